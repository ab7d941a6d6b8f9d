import { combinedMarginLoss } from "./combined_margin.ts";
import { testHeadLoss } from "../testing/loss_checks.ts";

testHeadLoss("combinedMargin", combinedMarginLoss, [{}, { m1: 0.9, m2: 0.4, m3: 0.15 }, {
  m1: 1.35,
  m2: 0,
  m3: 0.1,
  scale: 32,
}]);

import { lSoftmaxLoss } from "./lsoftmax.ts";
import { testHeadLoss } from "../testing/loss_checks.ts";

testHeadLoss("lSoftmax", lSoftmaxLoss, [{}, { margin: 1 }, { margin: 2 }, {
  margin: 3,
  lambda: 5,
}]);

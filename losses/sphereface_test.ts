import { sphereFaceLoss } from "./sphereface.ts";
import { testHeadLoss } from "../testing/loss_checks.ts";

testHeadLoss("sphereFace", sphereFaceLoss, [{}, { margin: 1 }, { margin: 2, lambda: 5 }, {
  margin: 3,
}]);

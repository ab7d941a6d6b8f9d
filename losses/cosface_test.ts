import { cosFaceLoss } from "./cosface.ts";
import { testHeadLoss } from "../testing/loss_checks.ts";

testHeadLoss("cosFace", cosFaceLoss, [{}, { scale: 30, margin: 0.4 }]);

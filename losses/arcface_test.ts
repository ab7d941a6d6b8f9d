import { arcFaceLoss } from "./arcface.ts";
import { testHeadLoss } from "../testing/loss_checks.ts";

testHeadLoss("arcFace", arcFaceLoss, [{}, { easyMargin: true }, { margin: 1.2, scale: 16 }]);

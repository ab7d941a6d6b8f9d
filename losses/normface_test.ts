import { normFaceLoss } from "./normface.ts";
import { testHeadLoss } from "../testing/loss_checks.ts";

testHeadLoss("normFace", normFaceLoss, [{}, { scale: 64 }]);

import { fNormSphereFaceLoss } from "./fnorm_sphereface.ts";
import { testHeadLoss } from "../testing/loss_checks.ts";

testHeadLoss("fNormSphereFace", fNormSphereFaceLoss, [{}, { margin: 2, scale: 64 }]);

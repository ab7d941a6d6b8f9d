import { softmaxLoss } from "./softmax.ts";
import { testHeadLoss } from "../testing/loss_checks.ts";

testHeadLoss("softmax", softmaxLoss, [{}], { bias: true });

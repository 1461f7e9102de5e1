// The core scalar panels every run has: loss, accuracy, learning rate, gradient and weight norms.

import { linePanel } from "../charts.js";
import { registerPanel } from "../panels.js";

const TRAIN_TEST = { "train.loss": "train", "test.loss": "test", "train.acc": "train", "test.acc": "test" };

registerPanel(
  linePanel({
    id: "loss",
    title: "Loss",
    series: ["train.loss", "test.loss"],
    labels: TRAIN_TEST,
    yTitle: "loss",
    logY: true,
    overlay: true,
    always: true,
    order: 10,
  }),
);

registerPanel(
  linePanel({
    id: "accuracy",
    title: "Accuracy",
    series: ["train.acc", "test.acc"],
    labels: TRAIN_TEST,
    yTitle: "accuracy",
    overlay: true,
    always: true,
    order: 20,
  }),
);

registerPanel(
  linePanel({
    id: "lr",
    title: "Learning rate",
    series: ["lr"],
    yTitle: "lr",
    logY: true,
    smooth: false,
    always: true,
    order: 30,
  }),
);

registerPanel(
  linePanel({
    id: "grad-norm",
    title: "Gradient norm ‖∇L(θ)‖",
    series: ["grad_norm"],
    yTitle: "‖∇L‖",
    logY: true,
    always: true,
    order: 40,
  }),
);

registerPanel(
  linePanel({
    id: "weight-norm",
    title: "Weight norm ‖θ‖",
    series: ["weight_norm"],
    yTitle: "‖θ‖",
    always: true,
    order: 50,
  }),
);

"""Studies beyond size that the runner applies to a point: μP learning rates, distillation, compression."""

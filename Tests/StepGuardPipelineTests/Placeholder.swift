// Tests for StepGuardPipeline live in this folder.

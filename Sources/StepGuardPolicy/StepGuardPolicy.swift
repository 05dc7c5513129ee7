/// Policy model.
public enum StepGuardPolicy {}

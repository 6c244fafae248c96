"""Pure scheduling core: interval math, slot finding and the Appointment state machine."""

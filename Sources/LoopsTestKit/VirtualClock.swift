// VirtualClock lands here.

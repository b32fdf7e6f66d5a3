"""Local fakes of the platforms tmbot talks to; the real SDKs run against them over loopback."""

"""Running trials: the session, the trial, the loop, reaping dead trials, the reporter and its protocol, command objectives, worker processes, Ray, the watchdog, retries and progress lines."""

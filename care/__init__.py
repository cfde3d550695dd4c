"""Care alerts: per-resident activity baselines and the detectors that watch them."""

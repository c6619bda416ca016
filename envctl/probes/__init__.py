"""In-image probes: standalone scripts (stdlib + torch only) copied into images and run there."""

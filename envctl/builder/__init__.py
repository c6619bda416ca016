"""Scripts that run inside an image's builder stage (copied into the build context)."""

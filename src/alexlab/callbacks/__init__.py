"""Lightning callbacks: layer summary, non-finite loss guard, throughput, images, progress bar."""

"""Lightning callbacks: layer summary with MACs, non-finite loss guard, throughput, images,
a progress bar that reads values only on logging steps."""

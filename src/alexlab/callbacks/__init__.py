"""Lightning callbacks: layer summary with MACs, non-finite loss guard, throughput, images,
preemption, a progress bar that reads values only on logging steps."""

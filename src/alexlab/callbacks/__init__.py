"""Lightning callbacks: layer summary with MACs, non-finite loss guard, throughput, images,
preemption."""

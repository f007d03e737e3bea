"""`fmnist parity`: numerical proof that two engines are the same math. The float32/float64
checks (`run`: structure, weight transfer both ways, lockstep training steps; judged by
`tolerance`, reported by `result`) and the bf16 mixed-precision ones (`bf16`), which also show
where each framework casts: the op logs and dtype table (`bf16_trace`, `bf16_table`,
`bf16_dtypes`) and the accumulation experiments (`bf16_accumulation`).

Every engine runs in a process of its own (`fmnist.engine_job`); this package only judges numbers.
"""

module zeroserve/benchmarks/gobackend

go 1.19

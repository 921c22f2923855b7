// Package bench compares lifeboat with the standard tools, in one run, and
// reports ratios. It has only benchmarks:
//
//	go test -run '^$' -bench . -benchtime 1x ./internal/bench/
//
// (or scripts/bench). Each benchmark times the standard tool chain and
// lifeboat on the same input, then reports lifeboat's time as a multiple of
// the tools' (x_tools; 1.0 = as fast) and its peak memory growth.
package bench

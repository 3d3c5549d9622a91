module github.com/smartscale/smartscale

go 1.26.8

require github.com/prometheus/prometheus v0.316.0 // indirect

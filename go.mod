module github.com/sockstap/sockstap

go 1.26.0

require (
	github.com/pires/go-proxyproto v0.15.0
	github.com/stretchr/testify v1.12.1
	go.uber.org/goleak v1.3.0
	golang.org/x/net v0.62.0
)

require go.yaml.in/yaml/v3 v3.0.5 // indirect

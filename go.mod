module github.com/sockstap/sockstap

go 1.26

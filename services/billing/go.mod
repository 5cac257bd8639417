module pushsms.io/services/billing

go 1.26.8

require (
	pushsms.io/lib v0.0.0
	pushsms.io/proto v0.0.0
)

replace (
	pushsms.io/lib => ../../lib
	pushsms.io/proto => ../../proto
)

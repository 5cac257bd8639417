module pushsms.io/cmd

go 1.26.8

require (
	pushsms.io/lib v0.0.0
	pushsms.io/proto v0.0.0
)

replace (
	pushsms.io/lib => ../lib
	pushsms.io/proto => ../proto
	pushsms.io/services/billing => ../services/billing
	pushsms.io/services/compliance => ../services/compliance
	pushsms.io/services/ingest => ../services/ingest
	pushsms.io/services/smsc-link => ../services/smsc-link
	pushsms.io/services/throttle => ../services/throttle
)

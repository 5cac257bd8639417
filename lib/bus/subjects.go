package bus

import "strings"

// Subjects, declared once. Each wildcard is what a consumer filters on; the
// builder beside it makes the concrete subject a publisher uses. Tokens are
// tenant ids and short codes, never phone numbers.
const (
	// sms.accepted.<tenant>.<short_code>: MessageAccepted, from ingest.
	SubjectAccepted = "sms.accepted.>"
	// sms.cleared.<tenant>.<short_code>: MessageCleared, from compliance.
	SubjectCleared = "sms.cleared.>"
	// sms.submit.<short_code>: SegmentSubmit, from throttle.
	SubjectSubmit = "sms.submit.>"
	// sms.report.<state>.<tenant>.<short_code>: SegmentReport from
	// smsc-link, MessageRejected (state "rejected") from compliance.
	SubjectReport = "sms.report.>"
	// sms.mo.<short_code>: MobileOriginated, from smsc-link.
	SubjectMO = "sms.mo.>"
	// sms.hold.<short_code>.<key>: a MessageCleared held by throttle until
	// a time (its not_before, its window's opening), stored in
	// SMS_CLEARED as a JetStream message schedule that the server
	// publishes again on its sms.cleared subject at that time.
	SubjectHold = "sms.hold.>"
	// sms.release.<short_code>.<campaign>.<key>: a CampaignBatch ingest
	// releases later, stored in SMS_ACCEPTED as a JetStream message
	// schedule that the server publishes on its sms.accepted subject when
	// it is due.
	SubjectRelease = "sms.release.>"
)

// Report states that end a segment's life: billing listens to these.
var FinalReportSubjects = []string{
	"sms.report.delivered.>",
	"sms.report.failed.>",
	"sms.report.expired.>",
}

// AcceptedSubject is where ingest publishes an accepted message.
func AcceptedSubject(tenant, shortCode string) string {
	return join("sms.accepted", tenant, shortCode)
}

// ClearedSubject is where compliance publishes a message it passed.
func ClearedSubject(tenant, shortCode string) string {
	return join("sms.cleared", tenant, shortCode)
}

// HoldSubject is where throttle schedules a held message of shortCode;
// key names the message (a subject token: no dots or wildcards).
func HoldSubject(shortCode, key string) string { return join("sms.hold", shortCode, key) }

// ReleaseSubject is where ingest schedules a batch of campaign on
// shortCode; key names the batch (a subject token: no dots or wildcards).
func ReleaseSubject(shortCode, campaign, key string) string {
	return join("sms.release", shortCode, campaign, key)
}

// ReleaseFilter matches the scheduled batches of campaign on shortCode,
// or of all its campaigns when campaign is empty.
func ReleaseFilter(shortCode, campaign string) string {
	if campaign == "" {
		return join("sms.release", shortCode) + ".>"
	}
	return join("sms.release", shortCode, campaign) + ".>"
}

// SubmitSubject is where throttle releases segments of a short code.
func SubmitSubject(shortCode string) string { return join("sms.submit", shortCode) }

// ReportSubject is where a segment's (or a message's) new state is told.
// state is lower case: rejected, submitted, nacked, unknown, buffered,
// delivered, failed, expired.
func ReportSubject(state, tenant, shortCode string) string {
	return join("sms.report", state, tenant, shortCode)
}

// A message cancelled before its first segment was released is reported
// once, with a MessageRejected{REASON_CANCELLED} under CancelledID, whoever
// reports it: ingest for a batch still scheduled, throttle for a message
// that came due or was waiting. Its detail says what was cancelled.
const (
	CampaignCancelled  = "campaign cancelled"
	ShortCodeCancelled = "short code cancelled"
)

// CancelledID is the Nats-Msg-Id of message id's cancellation report.
func CancelledID(messageID string) string { return messageID + "/cancelled" }

// ReportTenantFilter matches every report of one tenant.
func ReportTenantFilter(tenant string) string { return "sms.report.*." + token(tenant) + ".*" }

// MOSubject is where smsc-link publishes a subscriber's SMS to a short code.
func MOSubject(shortCode string) string { return join("sms.mo", shortCode) }

func join(prefix string, tokens ...string) string {
	var b strings.Builder
	b.WriteString(prefix)
	for _, t := range tokens {
		b.WriteByte('.')
		b.WriteString(token(t))
	}
	return b.String()
}

// token keeps a subject token from splitting or widening the subject: an
// empty or unsafe value becomes "_".
func token(s string) string {
	if s == "" {
		return "_"
	}
	for _, r := range s {
		if r == '.' || r == '*' || r == '>' || r <= ' ' || r == 0x7f {
			return "_"
		}
	}
	return s
}

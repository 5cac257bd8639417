package ucp

import (
	"errors"
	"fmt"
)

// Sentinel errors. Decoding errors wrap one of the first five.
var (
	ErrFraming      = errors.New("ucp: bad framing")
	ErrLength       = errors.New("ucp: LEN mismatch")
	ErrChecksum     = errors.New("ucp: bad checksum")
	ErrSyntax       = errors.New("ucp: syntax error")
	ErrFrameTooLong = errors.New("ucp: frame too long")
	ErrField        = errors.New("ucp: field cannot be encoded")

	// ErrAuth is returned by Dial/NewClient when the SMSC refuses the login
	// with NACK 07. Callers must back off instead of reconnecting in a loop.
	ErrAuth = errors.New("ucp: authentication failure")
	// ErrTimeout means no result arrived within the ACK timeout. The
	// operation may or may not have been accepted by the SMSC; the client
	// never resends by itself.
	ErrTimeout = errors.New("ucp: result timeout")
	// ErrClosed is returned for operations on a closed or failed session.
	ErrClosed = errors.New("ucp: session closed")
	// ErrInDoubt marks an operation that was written to the connection but
	// whose result will never come: the session ended, or the caller's
	// context was cancelled, while it waited. As with ErrTimeout the SMSC
	// may or may not have accepted it; an error without ErrInDoubt (a bare
	// ErrClosed, say) means the operation never went on the wire and can
	// be sent again safely. The client never resends by itself.
	ErrInDoubt = errors.New("ucp: operation sent, outcome unknown")
)

// ErrorCode is a UCP result error code (EC), two digits on the wire.
type ErrorCode uint8

// Error codes of CMG EMI-UCP 4.0 Table 7-1, plus the ERMES-derived codes that
// Wireshark lists (ucp.md §1.5).
const (
	ECChecksum                  ErrorCode = 1
	ECSyntax                    ErrorCode = 2
	ECNotSupported              ErrorCode = 3
	ECNotAllowed                ErrorCode = 4 // also the usual throttling/overload code
	ECCallBarred                ErrorCode = 5
	ECAdCInvalid                ErrorCode = 6
	ECAuthFailure               ErrorCode = 7
	ECLegitAllCalls             ErrorCode = 8
	ECGANotValid                ErrorCode = 9
	ECRepetitionNotAllowed      ErrorCode = 10
	ECLegitRepetition           ErrorCode = 11
	ECPriorityNotAllowed        ErrorCode = 12
	ECLegitPriority             ErrorCode = 13
	ECUrgentNotAllowed          ErrorCode = 14
	ECLegitUrgent               ErrorCode = 15
	ECReverseChargingNotAllowed ErrorCode = 16
	ECLegitReverseCharging      ErrorCode = 17
	ECDeferredNotAllowed        ErrorCode = 18
	ECNewACInvalid              ErrorCode = 19
	ECNewLegitInvalid           ErrorCode = 20
	ECStandardTextInvalid       ErrorCode = 21
	ECTimePeriodInvalid         ErrorCode = 22
	ECMessageTypeNotSupported   ErrorCode = 23
	ECMessageTooLong            ErrorCode = 24
	ECRequestedTextInvalid      ErrorCode = 25
	ECMessageTypeInvalid        ErrorCode = 26
	ECMessageNotFound           ErrorCode = 27
	ECInvalidCharset            ErrorCode = 28
	ECSubscriberHangUp          ErrorCode = 30
	ECFaxGroupNotSupported      ErrorCode = 31
	ECFaxTypeNotSupported       ErrorCode = 32
	ECAddressInList             ErrorCode = 33
	ECAddressNotInList          ErrorCode = 34
	ECListFull                  ErrorCode = 35
	ECRPIDInUse                 ErrorCode = 36
	ECDeliveryInProgress        ErrorCode = 37
	ECMessageForwarded          ErrorCode = 38
	ECLowNetworkStatus          ErrorCode = 50
	ECLegitStandardText         ErrorCode = 51
	ECPartiallySuccessful       ErrorCode = 53
	ECNotSuccessful             ErrorCode = 54
	ECSystemError               ErrorCode = 55
)

func (c ErrorCode) meaning() string {
	switch c {
	case 1:
		return "checksum error"
	case 2:
		return "syntax error"
	case 3:
		return "operation not supported"
	case 4:
		return "operation not allowed"
	case 5:
		return "call barring active"
	case 6:
		return "AdC invalid"
	case 7:
		return "authentication failure"
	case 8:
		return "legitimisation code for all calls, failure"
	case 9:
		return "GA not valid"
	case 10:
		return "repetition not allowed"
	case 11:
		return "legitimisation code for repetition, failure"
	case 12:
		return "priority call not allowed"
	case 13:
		return "legitimisation code for priority call, failure"
	case 14:
		return "urgent message not allowed"
	case 15:
		return "legitimisation code for urgent message, failure"
	case 16:
		return "reverse charging not allowed"
	case 17:
		return "legitimisation code for reverse charging, failure"
	case 18:
		return "deferred delivery not allowed"
	case 19:
		return "new AC not valid"
	case 20:
		return "new legitimisation code not valid"
	case 21:
		return "standard text not valid"
	case 22:
		return "time period not valid"
	case 23:
		return "message type not supported"
	case 24:
		return "message too long"
	case 25:
		return "requested standard text not valid"
	case 26:
		return "message type not valid for the pager type"
	case 27:
		return "message not found"
	case 28:
		return "invalid character set"
	case 30:
		return "subscriber hang-up"
	case 31:
		return "fax group not supported"
	case 32:
		return "fax message type not supported"
	case 33:
		return "address already in list"
	case 34:
		return "address not in list"
	case 35:
		return "list full"
	case 36:
		return "RPID already in use"
	case 37:
		return "delivery in progress"
	case 38:
		return "message forwarded"
	case 50:
		return "low network status"
	case 51:
		return "legitimisation code for standard text, failure"
	case 53:
		return "operation partially successful"
	case 54:
		return "operation not successful"
	case 55:
		return "system error"
	}
	return ""
}

// String returns the two-digit code and its meaning.
func (c ErrorCode) String() string {
	if t := c.meaning(); t != "" {
		return fmt.Sprintf("%02d %s", uint8(c), t)
	}
	return fmt.Sprintf("%02d", uint8(c))
}

// Temporary reports whether a NACK with this code should be retried later
// (requeue with back-off) rather than failed. Following ucp.md §1.5:
// 01 (checksum, resend), 04 (not allowed now / throttling), 37 (delivery in
// progress), 50 and 55 (ERMES network/system errors) and the proprietary
// 90–99 range are temporary; everything else is permanent.
func (c ErrorCode) Temporary() bool {
	switch {
	case c == ECChecksum, c == ECNotAllowed, c == ECDeliveryInProgress,
		c == ECLowNetworkStatus, c == ECSystemError:
		return true
	case c >= 90 && c <= 99:
		return true
	}
	return false
}

// NackError is a negative result (NACK) from the peer.
type NackError struct {
	OT   OT
	Code ErrorCode
	Text string // SM field of the NACK; free text from the SMSC
}

func (e *NackError) Error() string {
	if e.Text == "" {
		return fmt.Sprintf("ucp: NACK to OT %s: %s", e.OT, e.Code)
	}
	return fmt.Sprintf("ucp: NACK to OT %s: %s: %q", e.OT, e.Code, e.Text)
}

// Temporary reports whether the NACK code is a temporary one.
func (e *NackError) Temporary() bool { return e.Code.Temporary() }

// Temporary reports whether err is worth retrying later: a temporary NACK
// or a result timeout. Connection failures are left to the caller, which
// knows whether it will reconnect.
func Temporary(err error) bool {
	if errors.Is(err, ErrTimeout) {
		return true
	}
	var ne *NackError
	if errors.As(err, &ne) {
		return ne.Temporary()
	}
	return false
}

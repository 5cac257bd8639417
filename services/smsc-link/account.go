package smsclink

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
)

// Account is one large account at the SMSC: a short code and the
// credentials of its OT 60 login.
type Account struct {
	ShortCode string
	// Login is the OAdC of the login; ShortCode when empty.
	Login    string
	Password string
}

// login returns the account's login name.
func (a Account) login() string {
	if a.Login == "" {
		return a.ShortCode
	}
	return a.Login
}

// String never shows the password.
func (a Account) String() string {
	if a.Login == "" || a.Login == a.ShortCode {
		return a.ShortCode + ":*****"
	}
	return a.ShortCode + "/" + a.Login + ":*****"
}

// GoString keeps %#v from printing the password.
func (a Account) GoString() string { return "smsclink.Account(" + a.String() + ")" }

// LogValue keeps slog from printing the password.
func (a Account) LogValue() slog.Value { return slog.StringValue(a.String()) }

// AccountList is the -smsc-accounts flag: "<short code>[/<login>]:<password>"
// items, comma-separated, e.g. "36000:password,36001:password". The
// password is everything after the first ':' and cannot hold a ','. It
// comes from a Kubernetes Secret through SMSC_LINK_SMSC_ACCOUNTS.
type AccountList []Account

// String lists the accounts without their passwords (flag defaults, %v).
func (l AccountList) String() string {
	items := make([]string, len(l))
	for i, a := range l {
		items[i] = a.String()
	}
	return strings.Join(items, ",")
}

// GoString keeps %#v from printing the passwords.
func (l AccountList) GoString() string { return "smsclink.AccountList(" + l.String() + ")" }

// LogValue keeps slog from printing the passwords.
func (l AccountList) LogValue() slog.Value { return slog.StringValue(l.String()) }

// Set replaces the list with the parsed value. Errors name the item by its
// position, never by its text (which holds a password).
func (l *AccountList) Set(v string) error {
	var out AccountList
	for i, item := range strings.Split(v, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		id, pwd, ok := strings.Cut(item, ":")
		if !ok {
			return fmt.Errorf("smsc account %d: want <short code>[/<login>]:<password>", i+1)
		}
		code, login, _ := strings.Cut(id, "/")
		a := Account{ShortCode: code, Login: login, Password: pwd}
		if err := a.validate(); err != nil {
			return fmt.Errorf("smsc account %d: %w", i+1, err)
		}
		out = append(out, a)
	}
	*l = out
	return nil
}

func (a Account) validate() error {
	switch {
	case a.ShortCode == "" || !isDigits(a.ShortCode) || len(a.ShortCode) > 16:
		return errors.New("short code must be 1 to 16 digits")
	case len(a.login()) > 16:
		return errors.New("login longer than 16 characters")
	case strings.ContainsAny(a.login(), "/,:"):
		return errors.New("login holds a separator")
	case a.Password == "":
		return errors.New("empty password")
	case len(a.Password) > 16:
		// The OT 60 PWD field is at most 16 characters.
		return errors.New("password longer than 16 characters")
	}
	return nil
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

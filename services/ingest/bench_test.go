package ingest

import "testing"

func BenchmarkTemplateRender(b *testing.B) {
	tpl, err := parseTemplate("Bonjour {{prenom}}, -20% sur votre prochaine commande avec le code {{code}} jusqu'au {{date}}. STOP 36123")
	if err != nil {
		b.Fatal(err)
	}
	vars := map[string]string{"prenom": "Zoé", "code": "HIVER20", "date": "31/01"}
	for b.Loop() {
		if _, err := tpl.render(vars); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkNewRecipient(b *testing.B) {
	for b.Loop() {
		newRecipient("06 12 34 56 78")
	}
}

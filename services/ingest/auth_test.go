package ingest_test

import (
	"context"
	"testing"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"

	partnerv1 "pushsms.io/proto/gen/pushsms/partner/v1"
)

func TestAuth(t *testing.T) {
	e := start(t)
	msg := e.send(t, sendReq("06 12 34 56 78", "Soldes -50% ce week-end. STOP 36123"))

	t.Run("no key", func(t *testing.T) {
		_, err := e.client.GetMessage(context.Background(), &partnerv1.GetMessageRequest{MessageId: msg.GetMessageId()})
		wantCode(t, err, codes.Unauthenticated)
	})
	t.Run("bad key", func(t *testing.T) {
		_, err := e.client.GetMessage(as("psk_not-a-key"), &partnerv1.GetMessageRequest{MessageId: msg.GetMessageId()})
		wantCode(t, err, codes.Unauthenticated)
	})
	t.Run("not a bearer", func(t *testing.T) {
		ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Basic "+e.keyA)
		_, err := e.client.GetMessage(ctx, &partnerv1.GetMessageRequest{MessageId: msg.GetMessageId()})
		wantCode(t, err, codes.Unauthenticated)
	})
	t.Run("x-api-key", func(t *testing.T) {
		ctx := metadata.AppendToOutgoingContext(context.Background(), "x-api-key", e.keyA)
		resp, err := e.client.GetMessage(ctx, &partnerv1.GetMessageRequest{MessageId: msg.GetMessageId()})
		if err != nil {
			t.Fatal(err)
		}
		if got := resp.GetMessage().GetMessageId(); got != msg.GetMessageId() {
			t.Errorf("got message %s, want %s", got, msg.GetMessageId())
		}
	})
	t.Run("stream without key", func(t *testing.T) {
		st, err := e.client.StreamEvents(context.Background(), &partnerv1.StreamEventsRequest{})
		if err == nil {
			_, err = st.Recv()
		}
		wantCode(t, err, codes.Unauthenticated)
	})
	t.Run("other tenant reads", func(t *testing.T) {
		_, err := e.client.GetMessage(as(e.keyB), &partnerv1.GetMessageRequest{MessageId: msg.GetMessageId()})
		wantCode(t, err, codes.NotFound)
	})
	t.Run("unknown message", func(t *testing.T) {
		_, err := e.client.GetMessage(as(e.keyA), &partnerv1.GetMessageRequest{MessageId: "01936b2e-0000-7000-8000-000000000000"})
		wantCode(t, err, codes.NotFound)
	})
	t.Run("other tenant's short code", func(t *testing.T) {
		req := sendReq("06 12 34 56 78", "Bonjour")
		req.ShortCode = scB
		_, err := e.client.SendMessage(as(e.keyA), req)
		wantCode(t, err, codes.PermissionDenied)
	})
	t.Run("reflection needs no key", func(t *testing.T) {
		st, err := reflectionpb.NewServerReflectionClient(e.conn).ServerReflectionInfo(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if err := st.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}); err != nil {
			t.Fatal(err)
		}
		resp, err := st.Recv()
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, svc := range resp.GetListServicesResponse().GetService() {
			found = found || svc.GetName() == partnerv1.MessagingService_ServiceDesc.ServiceName
		}
		if !found {
			t.Errorf("reflection lists %v, want %s", resp.GetListServicesResponse().GetService(), partnerv1.MessagingService_ServiceDesc.ServiceName)
		}
	})
	t.Run("health needs no key", func(t *testing.T) {
		resp, err := healthpb.NewHealthClient(e.conn).Check(context.Background(), &healthpb.HealthCheckRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Errorf("health %v, want SERVING", resp.GetStatus())
		}
	})
}

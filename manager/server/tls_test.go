package server

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// writeCA makes a CA and one certificate it signs for 127.0.0.1, usable
// as server and client certificate, and writes them as PEM files.
func writeCA(t *testing.T, dir string) (ca, cert, key string, pair tls.Certificate) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "nerve test ca"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "replica"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &k.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(k)
	write := func(name, typ string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	ca, cert, key = write("ca.pem", "CERTIFICATE", caDER), write("cert.pem", "CERTIFICATE", der), write("key.pem", "EC PRIVATE KEY", keyDER)
	pair, err = tls.LoadX509KeyPair(cert, key)
	if err != nil {
		t.Fatal(err)
	}
	return ca, cert, key, pair
}

// TestMutualTLS runs a 3-replica cluster whose raft transport and HTTP API
// use mTLS, forwarding included; a client without a certificate is refused.
func TestMutualTLS(t *testing.T) {
	ca, cert, key, pair := writeCA(t, t.TempDir())
	cfgs := tcpConfigs(t, 3)
	servers := make([]*Server, 3)
	for i := range cfgs {
		cfgs[i].TLS = TLS{CertFile: cert, KeyFile: key, ClientCAFile: ca}
		servers[i] = startTCP(t, cfgs[i])
	}
	t.Cleanup(func() {
		for _, s := range servers {
			s.Close()
		}
	})
	l := waitLeader(t, servers)
	f := servers[(l+1)%3]

	pem, _ := os.ReadFile(ca)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	withCert := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{pair}}}}
	noCert := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}

	req, _ := http.NewRequest("POST", "https://"+f.cfg.HTTPAddr+"/v1/locks/acquire",
		jsonBody(t, acquire("r1", "n1", "q1")))
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := withCert.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("acquire over mTLS through a follower: %s, want 200", resp.Status)
	}
	if resp, err := noCert.Get("https://" + f.cfg.HTTPAddr + "/healthz"); err == nil {
		resp.Body.Close()
		t.Fatalf("a client without a certificate got %s, want a refused handshake", resp.Status)
	}
}

package interop

import (
	"context"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"
)

// chromiumTimeout bounds a Chromium run whose context has no deadline of
// its own: starting a browser on a loaded two-core machine takes seconds.
const chromiumTimeout = 60 * time.Second

// LocalOnly is the --host-resolver-rules value that [Chromium] uses
// unless told otherwise: Chromium looks no name up (every lookup fails)
// but 127.0.0.1, so that a page it loads came through the proxy, and
// nothing leaves the machine.
const LocalOnly = "MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"

// Browse says how [Chromium] loads a page.
type Browse struct {
	// Proxy is the --proxy-server value: "socks5://127.0.0.1:1080",
	// "http://127.0.0.1:8080". Empty loads the page directly. Loopback
	// destinations go through the proxy too (Chromium bypasses the proxy
	// for them unless told "<-loopback>").
	Proxy string

	// Screenshot, when set, is the path of a PNG that Chromium writes of
	// the page as it rendered it, Width by Height pixels.
	Screenshot string

	// Width and Height are the window's size. Zero means 800 by 600.
	Width, Height int

	// HostRules is the --host-resolver-rules value. Empty is [LocalOnly].
	HostRules string
}

// Chromium loads url in headless Chromium (Debian's package chromium), as
// b says, and returns the page's DOM as Chromium serialised it once the
// page had loaded. It runs the browser with a new profile in a directory
// of the test's, with nothing in the background (no component updates,
// sync or other traffic of Chromium's own), no QUIC and no sandbox (which
// needs privileges a test does not have as root). A browser that fails,
// or outlives ctx (or 60 seconds, when ctx has no deadline), fails the
// test; its whole process group is killed. A missing chromium skips the
// test, or fails it under CI=true, as [Need] does.
//
// (Each failure returns "" too, for a testing.TB whose Fatalf returns.)
func Chromium(t testing.TB, ctx context.Context, url string, b Browse) string {
	t.Helper()
	path := Need(t, "chromium", "chromium")
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, chromiumTimeout)
		defer cancel()
	}
	profile, err := os.MkdirTemp(t.TempDir(), "chromium-profile-")
	if err != nil {
		t.Fatalf("interop: %v", err)
		return ""
	}
	width, height := b.Width, b.Height
	if width == 0 || height == 0 {
		width, height = 800, 600
	}
	rules := b.HostRules
	if rules == "" {
		rules = LocalOnly
	}
	args := []string{
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
		"--no-first-run", "--no-default-browser-check",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-breakpad", "--disable-crash-reporter", "--disable-extensions",
		"--disable-client-side-phishing-detection", "--disable-domain-reliability",
		"--disable-default-apps", "--no-pings", "--safebrowsing-disable-auto-update",
		"--disable-features=NetworkTimeServiceQuerying,OptimizationHints,Translate,MediaRouter," +
			"AutofillServerCommunication,CertificateTransparencyComponentUpdater,HttpsUpgrades",
		"--hide-scrollbars", "--mute-audio", "--log-level=3", // fatal only: D-Bus is absent, and says so at length
		"--user-data-dir=" + profile,
		"--window-size=" + strconv.Itoa(width) + "," + strconv.Itoa(height),
		"--host-resolver-rules=" + rules,
	}
	if b.Proxy != "" {
		args = append(args, "--proxy-server="+b.Proxy, "--proxy-bypass-list=<-loopback>")
	} else {
		args = append(args, "--no-proxy-server")
	}
	if b.Screenshot != "" {
		shot, err := filepath.Abs(b.Screenshot)
		if err != nil {
			t.Fatalf("interop: %v", err)
			return ""
		}
		args = append(args, "--screenshot="+shot)
	}
	args = append(args, "--dump-dom", url)
	out, err := tryEnv(t, ctx, nil, []string{"HOME=" + profile}, path, args...)
	if err != nil {
		t.Fatalf("interop: %v", err)
		return ""
	}
	if len(out) == 0 {
		t.Fatalf("interop: chromium %s: no DOM on its standard output", url)
		return ""
	}
	if netError.Match(out) {
		// Chromium shows its error page, and exits 0.
		t.Fatalf("interop: chromium could not load %s: %s", url, errorCode.Find(out))
		return ""
	}
	if b.Screenshot != "" {
		if _, err := os.Stat(b.Screenshot); err != nil {
			t.Fatalf("interop: chromium wrote no screenshot of %s: %v", url, err)
			return ""
		}
	}
	return string(out)
}

// netError matches the error page Chromium shows for a page it could not
// load; errorCode, the error's name on it.
var (
	netError  = regexp.MustCompile(`<body[^>]*class="neterror`)
	errorCode = regexp.MustCompile(`ERR_[A-Z0-9_]+`)
)

// ReadPNG decodes the PNG file at path, such as a screenshot [Chromium]
// wrote; it fails the test when the file is missing, empty or not a PNG.
func ReadPNG(t testing.TB, path string) image.Image {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("interop: %v", err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("interop: %s: %v", path, err)
	}
	return img
}

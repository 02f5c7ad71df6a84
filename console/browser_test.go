package console_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// ChromiumEnv names a Chromium to drive (make test sets it to the one
// it unpacks from Debian's package); else one on PATH is used.
const ChromiumEnv = "STRATA_CHROMIUM"

// ScreenshotEnv names the directory the page screenshots go to (default:
// the test's temporary directory, which is removed).
const ScreenshotEnv = "STRATA_SCREENSHOTS"

func chromium(t *testing.T) string {
	if p := os.Getenv(ChromiumEnv); p != "" {
		if _, err := os.Stat(p); err == nil {
			return p
		}
		t.Skipf("no browser: %s=%s does not exist", ChromiumEnv, p)
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "headless-shell"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skipf("no browser: set %s or install chromium (make test unpacks Debian's)", ChromiumEnv)
	return ""
}

// TestPagesInBrowser loads every page in headless Chromium, checks what
// it shows once rendered, follows the navigation, submits the record
// browser's form, and saves a screenshot of each page.
func TestPagesInBrowser(t *testing.T) {
	exe := chromium(t)
	s := newSite(t)
	shots := os.Getenv(ScreenshotEnv)
	if shots == "" {
		shots = t.TempDir()
	}
	if err := os.MkdirAll(shots, 0o755); err != nil {
		t.Fatal(err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(exe), chromedp.NoSandbox,
		chromedp.DisableGPU, chromedp.WindowSize(1280, 900))
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancel()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	ctx, cancel = context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Skipf("no browser: %s does not start: %v", exe, err)
	}
	ready := func(sel string) chromedp.Action[chromedp.Void] { return chromedp.Query(sel, chromedp.NodeReady) }
	for _, p := range pages {
		if err := chromedp.Do(ctx, chromedp.Navigate(s.url+p.path), ready("footer")); err != nil {
			t.Fatalf("%s: %v", p.path, err)
		}
		text, err := chromedp.Run(ctx, chromedp.Text("main"))
		if err != nil {
			t.Fatalf("%s: %v", p.path, err)
		}
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)) // quality 100: PNG
		if err != nil {
			t.Fatalf("%s: screenshot: %v", p.path, err)
		}
		for _, w := range p.want {
			w = strings.ReplaceAll(w, "&#34;", `"`)                           // rendered text, not HTML
			if !strings.Contains(strings.ToLower(text), strings.ToLower(w)) { // headings are upper-cased by CSS
				t.Errorf("%s shows no %q:\n%s", p.path, w, text)
			}
		}
		name := strings.Trim(strings.NewReplacer("/", "-", "?", "-", "&", "-", "=", "-").Replace(p.path), "-")
		if name == "" {
			name = "cluster"
		}
		file := filepath.Join(shots, name+".png")
		if err := os.WriteFile(file, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: screenshot %s (%d KiB)", p.path, file, len(png)>>10)
	}

	// Navigation: from the cluster page to a topic, then browse it
	// through the form.
	if err := chromedp.Do(ctx, chromedp.Navigate(s.url+"/"),
		chromedp.Click(`header a[href="/topics"]`), ready(`a[href="/topics/orders"]`),
		chromedp.Click(`a[href="/topics/orders"]`), ready("h1")); err != nil {
		t.Fatal(err)
	}
	heading, err := chromedp.Run(ctx, chromedp.Text("h1"))
	if err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(s.url+"/browse"), ready("form.browse"),
		chromedp.SetValue(`select[name="topic"]`, "orders"), chromedp.SetValue(`input[name="partition"]`, "0"),
		chromedp.SetValue(`input[name="offset"]`, "10"), chromedp.SetValue(`input[name="limit"]`, "2"),
		chromedp.Submit("form.browse"), ready("#records")); err != nil {
		t.Fatal(err)
	}
	text, err := chromedp.Run(ctx, chromedp.Text("#records"))
	if err != nil {
		t.Fatal(err)
	}
	if heading != "Topic orders" {
		t.Errorf("clicked through to %q", heading)
	}
	if !strings.Contains(text, `"order":20,`) || !strings.Contains(text, `"order":22,`) || strings.Contains(text, `"order":24,`) {
		t.Errorf("the form read other records:\n%s", text)
	}
}

package tests

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestConsoleBrowser drives the console page in headless Chromium: the clients' connection
// and session actors appear in the tree, and the panic button of a session makes it restart
// (the page flags the restart) while it keeps serving.
func TestConsoleBrowser(t *testing.T) {
	chromium := needProgram(t, "chromium", "chromium")
	b, base := consoleBroker(t, chaosOn(""))
	sub := v3Connect(t, "tcp://"+b.TCP311, "browser-sub")
	sub.sub("page/#", 1)
	pub := v3Connect(t, "tcp://"+b.TCP5, "browser-pub")
	for range 20 {
		pub.pub("page/load", 0, false, "tick")
	}
	var c apiClient
	waitFor(t, 5*time.Second, "the subscriber in the directory", func() bool {
		c = clientsByID(t, base)["browser-sub"]
		return c.ConnActor != "" && len(c.Subscriptions) == 1
	})

	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(chromium),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1440, 1100),
	)
	ctx, cancelBrowser := chromedp.NewContext(actx)
	// Cleanups run last-registered first: the browser (and its keep-alive sockets to the
	// console) is gone before the broker's leak check.
	t.Cleanup(func() { cancelBrowser(); cancelAlloc() })
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()

	conn := `[data-id="` + c.ConnActor + `"]`
	sess := `[data-id="` + c.SessionActor + `"]`
	if err := chromedp.Do(ctx,
		chromedp.Navigate(base+"/"),
		chromedp.WaitVisible(chromedp.CSS(conn+`[data-kind="connection"]`)),
		chromedp.WaitVisible(chromedp.CSS(sess+`[data-kind="session"]`)),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-client="browser-sub"]`)),
	); err != nil {
		t.Fatalf("page does not show the client's actors: %v", err)
	}

	if err := chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(sess+` button.panic`)),
		chromedp.WaitVisible(chromedp.CSS(sess+` .restarts[data-restarts="1"]`)),
	); err != nil {
		t.Fatalf("the session's restart is not shown: %v", err)
	}
	// It came back: still in the tree, still delivering.
	pub.pub("page/after", 1, false, "after the restart")
	for {
		if m := sub.next(); m.Topic == "page/after" {
			break
		}
	}
	if err := chromedp.Do(ctx,
		chromedp.WaitVisible(chromedp.CSS(sess)),
		chromedp.Sleep(2500*time.Millisecond), // two polls: the chart has a few points
	); err != nil {
		t.Fatalf("after the restart: %v", err)
	}
	shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)) // 100: PNG
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	if err := os.WriteFile("/tmp/console.png", shot, 0o644); err != nil {
		t.Logf("screenshot not saved: %v", err)
	}
}

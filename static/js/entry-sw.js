// The quick-entry page's service worker. Served at /entry/sw.js, which puts PAGE (the
// quick-entry page) in its scope and defines PAGE and PRECACHE (the files the page needs).
//
// It answers for the page and its files from the network whenever there is one, keeping a copy
// of each answer, and from those copies when there is none: the page then opens, and queues
// entries, without a connection. Posting entries is left to the page, which queues them.
// The quick-entry page once its user is signed out, and the sign-out form (static/js/app.js),
// delete caches named "cims-quick-entry…"; a new name drops the copies earlier versions kept.
const CACHE = "cims-quick-entry-v2";
const OPTIONS = { ignoreSearch: true, ignoreVary: true };

self.addEventListener("install", (event) => {
  event.waitUntil((async () => {
    const cache = await caches.open(CACHE);
    await cache.addAll(PRECACHE);
    try {
      const response = await fetch(PAGE, { credentials: "same-origin", redirect: "manual" });
      if (response.ok) { await cache.put(PAGE, response); }
    } catch (error) {
      // Offline while installing: the page is kept the next time it loads.
    }
    await self.skipWaiting();
  })());
});

self.addEventListener("activate", (event) => {
  event.waitUntil((async () => {
    for (const name of await caches.keys()) {
      if (name !== CACHE) { await caches.delete(name); }
    }
    await self.clients.claim();
  })());
});

self.addEventListener("fetch", (event) => {
  const request = event.request;
  if (request.method !== "GET") { return; }
  const url = new URL(request.url);
  if (url.origin !== self.location.origin) { return; }
  if (request.mode === "navigate" && url.pathname === PAGE) {
    event.respondWith(fromNetworkOrCopy(request, PAGE));
  } else if (PRECACHE.includes(url.pathname)) {
    event.respondWith(fromNetworkOrCopy(request, url.pathname));
  }
});

async function fromNetworkOrCopy(request, key) {
  const cache = await caches.open(CACHE);
  try {
    const response = await fetch(request);
    if (response.ok && !response.redirected) {
      await cache.put(key, response.clone());
    } else if (key === PAGE && (response.type === "opaqueredirect" || response.redirected ||
               response.status === 403)) {
      // Sent to sign in, or refused: the user the copy was made for is no longer the one signed
      // in, and the copy (their name, their entries) must not open for the next user.
      await cache.delete(key);
    }
    return response;
  } catch (error) {
    const copy = await cache.match(key, OPTIONS);
    return copy || Response.error();
  }
}

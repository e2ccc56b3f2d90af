// Live shopping cart (Introduction to Tornado, ch. 5), without jQuery.
// Count updates arrive over a WebSocket (/cart/socket) or, when that is
// unavailable or ?transport=longpoll is given, by long polling
// /cart/status?count=<last seen>: the server answers as soon as the count
// differs, so no change between two polls is missed.
"use strict";
(function () {
  const state = { session: window.CART.session, count: window.CART.count, inCart: false, errorSleep: 500 };
  const $ = (id) => document.getElementById(id);

  function xsrf() {
    const m = document.cookie.match(/(?:^|;\s*)_xsrf=([^;]*)/);
    return m ? decodeURIComponent(m[1]) : "";
  }

  function show(count) {
    state.count = count;
    $("count").textContent = String(count);
    const button = $("add-button");
    if (!state.inCart) button.disabled = count === 0;
  }

  function setInCart(inCart) {
    state.inCart = inCart;
    const button = $("add-button");
    button.dataset.action = inCart ? "remove" : "add";
    button.textContent = inCart ? "Remove from cart" : "Add to cart";
    button.disabled = !inCart && state.count === 0;
  }

  async function toggle() {
    const button = $("add-button");
    button.disabled = true;
    $("message").textContent = "";
    const body = new URLSearchParams({ action: button.dataset.action, session: state.session, _xsrf: xsrf() });
    try {
      const response = await fetch("/cart", { method: "POST", body });
      const reply = await response.json();
      if (response.status === 409) {
        $("message").textContent = "Sorry, sold out.";
      } else if (!response.ok) {
        $("message").textContent = (reply.error && reply.error.message) || "Request failed.";
      }
      if (typeof reply.inventoryCount === "number") show(reply.inventoryCount);
      setInCart(Boolean(reply.inCart));
    } catch (e) {
      $("message").textContent = "Network error; try again.";
      button.disabled = false;
    }
  }

  async function poll() {
    $("transport").textContent = "long polling";
    for (;;) {
      try {
        const response = await fetch("/cart/status?count=" + state.count);
        if (!response.ok) throw new Error("status " + response.status);
        const reply = await response.json();
        show(reply.inventoryCount);
        state.errorSleep = 500;
      } catch (e) {
        // Back off exponentially (capped) and recover by itself.
        await new Promise((r) => setTimeout(r, state.errorSleep));
        state.errorSleep = Math.min(state.errorSleep * 2, 30000);
      }
    }
  }

  function socket() {
    const scheme = location.protocol === "https:" ? "wss://" : "ws://";
    let opened = false;
    const ws = new WebSocket(scheme + location.host + "/cart/socket");
    ws.onopen = () => { opened = true; $("transport").textContent = "WebSocket"; };
    ws.onmessage = (event) => show(JSON.parse(event.data).inventoryCount);
    ws.onclose = () => {
      // Never opened: no WebSocket here, use long polling. Dropped later:
      // reconnect after a pause.
      if (!opened) poll();
      else setTimeout(socket, 1000);
    };
  }

  $("add-button").addEventListener("click", toggle);
  show(state.count);
  const params = new URLSearchParams(location.search);
  if (params.get("transport") === "longpoll" || !("WebSocket" in window)) poll();
  else socket();
})();

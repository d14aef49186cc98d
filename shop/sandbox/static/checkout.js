// A stand-in provider's checkout page: shows the payment, and its buttons ask the sandbox to
// pay, fail or pay twice (the sandbox then sends the provider's signed webhook to the shop).
"use strict";

(function () {
  const parts = location.pathname.split("/").filter(Boolean); // sandbox, checkout, name, id
  const provider = parts[2] || "";
  const payment = parts[3] || "";
  const api = "/sandbox/api/checkout/" + encodeURIComponent(provider) + "/" +
    encodeURIComponent(payment);
  const result = document.getElementById("result");
  const buttons = document.querySelectorAll("[data-action]");

  function show(state) {
    document.getElementById("provider").textContent = state.provider + " checkout";
    document.getElementById("amount").textContent = state.amount;
    document.getElementById("payment").textContent = state.id;
    document.getElementById("state").textContent = state.state;
    document.title = state.provider + " · " + state.amount;
    buttons.forEach((button) => { button.disabled = !state.open; });
  }

  function say(text, failed) {
    result.textContent = text;
    result.classList.toggle("failed", Boolean(failed));
  }

  async function load() {
    const response = await fetch(api);
    const body = await response.json();
    if (!response.ok) {
      say(body.error || "This payment does not exist.", true);
      buttons.forEach((button) => { button.disabled = true; });
      return;
    }
    show(body);
  }

  async function act(action) {
    buttons.forEach((button) => { button.disabled = true; });
    say("Sending…");
    const response = await fetch(api + "/" + action, {
      method: "POST",
      headers: {"Content-Type": "application/json"},
      body: "{}",
    });
    const body = await response.json();
    if (!response.ok) {
      say(body.error || "Refused.", true);
      await load();
      return;
    }
    show(body);
    const answers = body.webhooks.length
      ? "The shop answered the webhook with " + body.webhooks.join(" and ") + "."
      : "No webhook was sent.";
    say((action === "fail" ? "Declined. " : "Paid. ") + answers +
      " You can close this page and go back to the chat.");
  }

  buttons.forEach((button) => {
    button.addEventListener("click", () => { act(button.dataset.action); });
  });
  load().catch(() => say("The sandbox does not answer.", true));
})();

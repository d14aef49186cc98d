// The sandbox's web chat: every person's Telegram chat with the bot, side by side.
//
// Everything arrives over one WebSocket (/sandbox/ws): first a snapshot ("hello"), then each
// change as it happens. What people do goes back over the same socket. Bot text is never
// parsed as HTML here: the server sends the visible text and its MessageEntity list, and
// the page builds DOM nodes from them (text nodes only; links only for http, https and tg).
"use strict";

(function () {
  const state = {
    socket: null,
    people: new Map(), // id -> {id, name, language, operator}
    retry: 500,
    sheet: null, // the invoice being paid: {chat, message, link}
  };
  const $ = (id) => document.getElementById(id);
  const chatsBox = $("chats");

  // ------------------------------------------------------------------ the socket

  function connect() {
    const scheme = location.protocol === "https:" ? "wss://" : "ws://";
    const socket = new WebSocket(scheme + location.host + "/sandbox/ws");
    state.socket = socket;
    setStatus("connecting…", "");
    socket.addEventListener("message", (event) => handle(JSON.parse(event.data)));
    socket.addEventListener("close", () => {
      if (state.socket !== socket) return;
      setStatus("disconnected, retrying…", "bad");
      setTimeout(connect, state.retry);
      state.retry = Math.min(state.retry * 2, 5000);
    });
  }

  function send(command) {
    if (!state.socket || state.socket.readyState !== WebSocket.OPEN) {
      showAlert("The sandbox is not connected yet.");
      return false;
    }
    state.socket.send(JSON.stringify(command));
    return true;
  }

  function setStatus(text, kind) {
    const status = $("status");
    status.textContent = text;
    status.className = "status " + kind;
  }

  function handle(event) {
    switch (event.type) {
      case "hello": return hello(event);
      case "person": return addPerson(event.person);
      case "message": return showMessage(event.chat, event.message);
      case "edit": return showMessage(event.chat, event.message);
      case "delete": return removeMessage(event.chat, event.id);
      case "answer": return answered(event);
      case "refused": return refused(event);
      case "clock": return showClock(event.clock);
    }
  }

  function hello(event) {
    state.retry = 500;
    setStatus("connected", "good");
    document.body.dataset.ready = "true";
    chatsBox.replaceChildren();
    state.people.clear();
    const languages = document.querySelector("#add-person select");
    languages.replaceChildren(...event.languages.map((code) => option(code)));
    const jumps = $("jumps");
    jumps.replaceChildren(...event.jumps.map((jump) => {
      const button = element("button", "jump", "+1 " + jump);
      button.type = "button";
      button.dataset.jump = jump;
      button.addEventListener("click", () => send({type: "advance", by: jump}));
      return button;
    }));
    showClock(event.clock);
    event.people.forEach(addPerson);
    for (const [chat, messages] of Object.entries(event.chats)) {
      messages.forEach((message) => showMessage(Number(chat), message));
    }
  }

  function option(code) {
    const item = element("option", "", code);
    item.value = code;
    return item;
  }

  function showClock(clock) {
    $("clock-now").textContent = clock.now;
    $("clock-ahead").textContent = clock.ahead;
  }

  // ------------------------------------------------------------------ chats

  function addPerson(person) {
    if (state.people.has(person.id)) return;
    state.people.set(person.id, person);
    const chat = element("section", "chat" + (person.operator ? " operator" : ""));
    chat.dataset.chat = String(person.id);
    chat.setAttribute("aria-label", "Chat of " + person.name);

    const head = element("header", "chat-head");
    head.append(element("div", "avatar", person.name.slice(0, 1).toUpperCase()));
    const who = element("div", "who");
    who.append(element("strong", "", person.name));
    const role = person.operator ? "operator (ADMIN_IDS)" : "customer";
    who.append(element("small", "", role + " · " + person.language + " · id " + person.id));
    head.append(who);

    const log = element("div", "messages");
    log.setAttribute("role", "log");
    log.dataset.empty = person.operator
      ? "The operator's chat: alerts arrive here, and admin commands are typed below."
      : "A new chat with the bot. Press /start to begin.";
    const toast = element("div", "toast");
    toast.hidden = true;

    const composer = element("form", "composer");
    composer.autocomplete = "off";
    const input = element("input", "");
    input.name = "text";
    input.placeholder = person.operator ? "Admin command or message" : "Message";
    input.setAttribute("aria-label", "Message from " + person.name);
    const button = element("button", "", "Send");
    button.type = "submit";
    composer.append(input, button);
    composer.addEventListener("submit", (event) => {
      event.preventDefault();
      const text = input.value;
      if (text.trim() && send({type: "send", chat: person.id, text: text})) input.value = "";
    });
    if (!person.operator) {
      const start = element("button", "start", "/start");
      start.type = "button";
      start.addEventListener("click", () => send({type: "send", chat: person.id, text: "/start"}));
      composer.prepend(start);
    }
    chat.append(head, log, toast, composer);
    // The operator's chat comes first, customers in the order they came.
    if (person.operator) chatsBox.prepend(chat); else chatsBox.append(chat);
  }

  function chatBox(chat) {
    return chatsBox.querySelector('section.chat[data-chat="' + Number(chat) + '"]');
  }

  function showMessage(chat, message) {
    const box = chatBox(chat);
    if (!box) return;
    const log = box.querySelector(".messages");
    const entry = element("div", "entry from-" + message.from);
    entry.dataset.id = String(message.id);
    const bubble = element("div", "bubble");
    if (message.photo !== undefined) bubble.append(photo(message.photo));
    if (message.invoice) bubble.append(invoice(message.invoice));
    if (message.text) {
      const text = element("div", "text");
      text.append(formatted(message.text, message.entities || [], chat));
      bubble.append(text);
    }
    const when = new Date(message.date * 1000);
    const meta = element("span", "meta", when.toLocaleTimeString([], {hour: "2-digit", minute: "2-digit"}));
    if (message.edited) meta.textContent = "edited " + meta.textContent;
    bubble.append(meta);
    entry.append(bubble);
    if (message.keyboard && message.keyboard.length) entry.append(keyboard(chat, message));
    const old = log.querySelector('.entry[data-id="' + Number(message.id) + '"]');
    const atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 60;
    if (old) old.replaceWith(entry); else log.append(entry);
    if (!old || atBottom) log.scrollTop = log.scrollHeight;
    settle(box);
    if (message.from === "service" && state.sheet && state.sheet.chat === chat) closeSheet();
  }

  function removeMessage(chat, id) {
    const box = chatBox(chat);
    const old = box && box.querySelector('.entry[data-id="' + Number(id) + '"]');
    if (old) old.remove();
  }

  function photo(url) {
    if (!url) return element("div", "photo missing", "🖼 photo");
    const image = element("img", "photo");
    image.alt = "photo from the bot";
    image.src = url; // always a /sandbox/files/ address of this server
    return image;
  }

  function invoice(data) {
    const box = element("div", "invoice" + (data.paid ? " paid" : ""));
    box.append(element("div", "invoice-title", data.title));
    box.append(element("div", "invoice-description", data.description));
    box.append(element("div", "invoice-price", data.price + (data.paid ? " · paid" : "")));
    return box;
  }

  // ------------------------------------------------------------------ keyboards

  function keyboard(chat, message) {
    const box = element("div", "keyboard");
    for (const row of message.keyboard) {
      const line = element("div", "row");
      for (const spec of row) line.append(button(chat, message, spec));
      box.append(line);
    }
    return box;
  }

  function button(chat, message, spec) {
    const item = element("button", "key kind-" + spec.kind, spec.text);
    item.type = "button";
    if (spec.kind === "callback") {
      item.dataset.callback = spec.data;
      item.addEventListener("click", () => {
        if (send({type: "press", chat: chat, message: message.id, data: spec.data})) {
          item.classList.add("pending");
        }
      });
    } else if (spec.kind === "pay") {
      item.dataset.pay = "true";
      item.addEventListener("click", () => openSheet(chat, message.id, null, message.invoice));
    } else if (spec.kind === "invoice") {
      item.dataset.url = spec.url;
      item.addEventListener("click", () => openSheet(chat, null, spec.url, {title: spec.text}));
    } else if (spec.kind === "checkout") {
      item.dataset.url = spec.url;
      item.addEventListener("click", () => openBrowser(spec.url));
    } else if (spec.kind === "link") {
      item.dataset.url = spec.url;
      item.classList.add("external");
      item.addEventListener("click", () => openLink(spec.url));
    } else {
      item.disabled = true;
    }
    return item;
  }

  // Buttons stay "pending" until the bot has answered the press or changed the chat.
  function settle(box) {
    box.querySelectorAll(".key.pending").forEach((key) => key.classList.remove("pending"));
  }

  function answered(event) {
    const box = chatBox(event.chat);
    if (!box) return;
    settle(box);
    if (!event.text) return;
    if (event.alert) { showAlert(event.text); return; }
    const toast = box.querySelector(".toast");
    toast.textContent = event.text;
    toast.hidden = false;
    clearTimeout(toast.timer);
    toast.timer = setTimeout(() => { toast.hidden = true; }, 3000);
  }

  function refused(event) {
    const box = event.chat ? chatBox(event.chat) : null;
    if (box) settle(box);
    if (state.sheet && state.sheet.chat === event.chat) {
      const error = $("sheet-error");
      error.textContent = event.text;
      error.hidden = false;
      $("sheet-pay").disabled = false;
      return;
    }
    showAlert(event.text);
  }

  // ------------------------------------------------------------------ formatted text

  // Builds the text from MessageEntity objects, as a Telegram client does. Entities from
  // the bot's HTML nest properly; one that would cross its parent's end is cut there.
  function formatted(text, entities, chat) {
    const root = document.createDocumentFragment();
    const stack = [{node: root, end: text.length}];
    let position = 0;
    const top = () => stack[stack.length - 1];
    const flush = (until) => {
      if (until > position) top().node.append(document.createTextNode(text.slice(position, until)));
      position = Math.max(position, until);
    };
    const sorted = entities.slice().sort((a, b) => a.offset - b.offset || b.length - a.length);
    for (const entity of sorted) {
      while (stack.length > 1 && top().end <= entity.offset) { flush(top().end); stack.pop(); }
      flush(entity.offset);
      const end = Math.min(entity.offset + entity.length, top().end);
      const node = entityNode(entity, text.slice(entity.offset, end), chat);
      top().node.append(node);
      stack.push({node: node, end: end});
    }
    while (stack.length > 1) { flush(top().end); stack.pop(); }
    flush(text.length);
    return root;
  }

  const TAGS = {bold: "b", italic: "i", underline: "u", strikethrough: "s", code: "code", pre: "pre"};

  function entityNode(entity, content, chat) {
    if (TAGS[entity.type]) {
      const node = document.createElement(TAGS[entity.type]);
      if (entity.language) node.dataset.language = entity.language;
      return node;
    }
    if (entity.type === "text_link" || entity.type === "url") {
      const url = entity.type === "url" ? content : entity.url;
      if (!safeUrl(url)) return element("span", "link-dead");
      const link = element("a", "");
      link.href = url;
      link.target = "_blank";
      link.rel = "noopener noreferrer";
      return link;
    }
    if (entity.type === "spoiler") {
      const spoiler = element("span", "spoiler");
      spoiler.title = "spoiler: click to show";
      spoiler.addEventListener("click", () => spoiler.classList.add("shown"));
      return spoiler;
    }
    if (entity.type === "blockquote" || entity.type === "expandable_blockquote") {
      const quote = element("blockquote", entity.type === "expandable_blockquote" ? "folded" : "");
      quote.addEventListener("click", () => quote.classList.remove("folded"));
      return quote;
    }
    if (entity.type === "bot_command") {
      const command = element("span", "command");
      command.addEventListener("click", () => send({type: "send", chat: chat, text: content}));
      return command;
    }
    return element("span", "entity-" + String(entity.type).replace(/[^a-z_]/g, ""));
  }

  function safeUrl(url) {
    try {
      return ["http:", "https:", "tg:"].includes(new URL(url).protocol);
    } catch (error) {
      return false;
    }
  }

  function openLink(url) {
    if (!safeUrl(url)) return;
    window.open(url, "_blank", "noopener,noreferrer");
  }

  // ------------------------------------------------------------------ Telegram's payment sheet

  function openSheet(chat, message, link, details) {
    state.sheet = {chat: chat, message: message, link: link};
    $("sheet-title").textContent = (details && details.title) || "Payment";
    $("sheet-description").textContent = (details && details.description) || "";
    $("sheet-price").textContent = (details && details.price) || "";
    $("sheet-error").hidden = true;
    $("sheet-pay").disabled = false;
    $("sheet-pay").textContent = details && details.price ? "Pay " + details.price : "Pay";
    $("sheet").hidden = false;
  }

  function closeSheet() {
    state.sheet = null;
    $("sheet").hidden = true;
  }

  $("sheet-pay").addEventListener("click", () => {
    const sheet = state.sheet;
    if (!sheet) return;
    const command = {type: "pay", chat: sheet.chat};
    if (sheet.link) command.link = sheet.link; else command.message = sheet.message;
    if (send(command)) {
      $("sheet-pay").disabled = true;
      $("sheet-pay").textContent = "Paying…";
    }
  });
  $("sheet-cancel").addEventListener("click", closeSheet);

  // ------------------------------------------------------------------ in-app browser, alerts

  // A checkout page is this server's own: opened at the address the page came from, so it
  // works however the sandbox is reached (the shop wrote the address it binds).
  function openBrowser(url) {
    const address = new URL(url);
    const here = location.origin + address.pathname;
    $("browser-url").textContent = here;
    $("browser-frame").src = here;
    $("browser").hidden = false;
  }

  $("browser-close").addEventListener("click", () => {
    $("browser").hidden = true;
    $("browser-frame").src = "about:blank";
  });

  function showAlert(text) {
    $("alert-text").textContent = text;
    $("alert").hidden = false;
    $("alert-ok").focus();
  }

  $("alert-ok").addEventListener("click", () => { $("alert").hidden = true; });

  // ------------------------------------------------------------------ people, helpers

  $("add-person").addEventListener("submit", (event) => {
    event.preventDefault();
    const form = event.target;
    send({type: "person", name: form.elements.name.value, language: form.elements.language.value});
    form.elements.name.value = "";
  });

  function element(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  connect();
})();

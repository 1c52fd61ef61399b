// Live updates for the room page: receive with EventSource, send with fetch.
// Without this file the page still works: the forms post and the page reloads.
// User text is only ever set with textContent, names inside <bdi>, messages dir=auto.
'use strict';

(() => {
  const room = document.getElementById('room');
  if (!room) return;
  const $ = (id) => document.getElementById(id);
  const { code, me } = room.dataset;
  let lastId = Number(room.dataset.lastId) || 0;
  // After a join or leave, and every so often, ask who is connected.
  const PRESENCE_DELAY = 1000;
  const PRESENCE_EVERY = 15000;
  // A tab left open for days must not grow without bound: the log keeps only the
  // newest entries (messages and notices alike), dropping the oldest as new ones come.
  const MAX_LOG_ENTRIES = 500;
  const [log, present, status, form, input, error, pill, copy] = [
    'log', 'present', 'status', 'send', 'message', 'error', 'new-messages', 'copy-link',
  ].map($);

  const setStatus = (text, state) => {
    status.textContent = text;
    status.dataset.state = state;
  };
  const showError = (text) => {
    error.textContent = text;
    error.hidden = !text;
  };
  const localClock = (iso) =>
    new Date(iso).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  const element = (tag, className, text) => {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  };

  // Times rendered by the server are UTC; show the reader's own clock.
  for (const time of log.querySelectorAll('time')) time.textContent = localClock(time.dateTime);

  const atBottom = () => log.scrollHeight - log.scrollTop - log.clientHeight < 48;
  const toBottom = () => {
    log.scrollTop = log.scrollHeight;
    pill.hidden = true;
  };
  log.addEventListener('scroll', () => {
    if (atBottom()) pill.hidden = true;
  });
  pill.addEventListener('click', toBottom);

  // Drops the oldest entries past MAX_LOG_ENTRIES. A reader scrolled up keeps their
  // place: the first entry that stays is put back where it was in the view (the
  // browser's own scroll anchoring may have done part of it already). Scroll
  // offsets are whole pixels, so what rounding leaves over is carried to the next
  // trim; otherwise the view would creep a fraction of a pixel per entry dropped.
  let scrollOwed = 0;
  function trimLog() {
    const excess = log.children.length - MAX_LOG_ENTRIES;
    if (excess <= 0) return;
    const anchor = log.children[excess];
    const before = anchor.getBoundingClientRect().top;
    for (const old of [...log.children].slice(0, excess)) old.remove();
    const wanted = anchor.getBoundingClientRect().top - before + scrollOwed;
    const from = log.scrollTop;
    log.scrollTop = from + wanted;
    const rest = wanted - (log.scrollTop - from);
    // More than a pixel left over: the log could not scroll that far (the reader
    // was at the very top); nothing is owed then.
    scrollOwed = Math.abs(rest) < 1 ? rest : 0;
  }

  function show(event) {
    // A reconnect replays from Last-Event-ID; whatever is already shown is skipped.
    if (event.id <= lastId) return;
    lastId = event.id;
    const follow = atBottom();
    let item;
    if (event.kind === 'message') {
      item = element('li', event.name === me ? 'msg mine' : 'msg');
      const time = element('time', '', localClock(event.at));
      time.dateTime = event.at;
      const text = element('p', 'text', event.text);
      text.dir = 'auto';
      item.append(element('bdi', 'who', event.name), ' ', time, text);
    } else {
      const verb = event.kind === 'join' ? 'entered' : 'left';
      item = element('li', 'notice');
      item.append(element('bdi', '', event.name), ` has ${verb} the room`);
    }
    item.dataset.id = event.id;
    log.append(item);
    trimLog();
    if (follow || event.name === me) toBottom();
    else pill.hidden = false;
  }

  // One entry of the people list, as views/room.hbs renders it.
  const person = (name, connected) => {
    const state = connected ? 'connected' : 'not connected';
    const item = element('li');
    item.dataset.connected = connected;
    const dot = element('span', 'dot');
    dot.title = state;
    dot.setAttribute('aria-hidden', 'true');
    item.append(dot, element('bdi', '', name), ' ', element('span', 'visually-hidden', state));
    return item;
  };

  // Bumped by every join or leave shown, and by every request for the list: an
  // answer is used only if nothing newer has happened since it was asked for.
  let presenceVersion = 0;
  async function refreshPresence() {
    const asked = ++presenceVersion;
    try {
      const response = await fetch(`/rooms/${code}/members`, {
        cache: 'no-store',
        credentials: 'same-origin',
      });
      if (!response.ok) return;
      const people = await response.json();
      if (asked !== presenceVersion || !Array.isArray(people)) return;
      present.replaceChildren(...people.map((p) => person(String(p.name), p.connected === true)));
    } catch {
      // A failed request changes nothing; the next one may do better.
    }
  }
  let presenceTimer;
  const refreshPresenceSoon = () => {
    clearTimeout(presenceTimer);
    presenceTimer = setTimeout(refreshPresence, PRESENCE_DELAY);
  };
  const presencePoll = setInterval(refreshPresence, PRESENCE_EVERY);

  function updatePresence(event) {
    presenceVersion++;
    const here = [...present.children].find(
      (li) => li.querySelector('bdi')?.textContent === event.name,
    );
    // Someone who just joined has no stream open yet, as far as we know.
    if (event.kind === 'join' && !here) present.append(person(event.name, false));
    if (event.kind === 'leave' && here) here.remove();
    refreshPresenceSoon();
  }

  // Set by the server's `reconnect` event (it is shutting down, so the stream is
  // about to end); cleared once a stream is open again.
  let restarting = false;
  const source = new EventSource(`/rooms/${code}/events?after=${lastId}`);
  source.addEventListener('open', () => {
    restarting = false;
    setStatus('Connected', 'connected');
    // Our own stream counts now; and while we were away, others may have come and gone.
    refreshPresence();
  });
  source.addEventListener('error', () => {
    if (source.readyState === EventSource.CLOSED) {
      setStatus('Room closed: it ended, or you are no longer in it.', 'closed');
      form.hidden = true;
      clearInterval(presencePoll);
      clearTimeout(presenceTimer);
    } else if (!restarting) {
      setStatus('Reconnecting…', 'reconnecting');
    }
  });
  // The server is going down and will be back: the browser reconnects by itself
  // (with Last-Event-ID, so nothing is lost); say why until it has.
  source.addEventListener('reconnect', () => {
    restarting = true;
    setStatus('The server is restarting: reconnecting…', 'reconnecting');
  });
  for (const kind of ['message', 'join', 'leave']) {
    source.addEventListener(kind, (message) => {
      const event = JSON.parse(message.data);
      if (event.id > lastId && kind !== 'message') updatePresence(event);
      show(event);
    });
  }
  // Events we missed are no longer kept: start again from a fresh page.
  source.addEventListener('reset', () => location.reload());

  form.addEventListener('submit', async (submit) => {
    submit.preventDefault();
    if (!input.value.trim()) return;
    try {
      const response = await fetch(form.action, {
        method: 'POST',
        body: new URLSearchParams({ message: input.value }),
      });
      if (response.ok) {
        input.value = '';
        showError('');
      } else {
        showError((await response.text()).trim() || `Not sent (error ${response.status}).`);
      }
    } catch {
      showError('Not sent: the server cannot be reached. Check your connection.');
    }
    input.focus();
  });

  copy.hidden = false;
  copy.addEventListener('click', async () => {
    const link = new URL(`/rooms/${code}`, location.href).href;
    try {
      await navigator.clipboard.writeText(link);
      copy.textContent = 'Copied!';
    } catch {
      window.prompt('Copy this link:', link);
    }
    setTimeout(() => (copy.textContent = 'Copy link'), 2000);
  });
  trimLog();
  toBottom();
})();

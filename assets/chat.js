// Live updates for the room page. Receives with EventSource, or by long polling
// while a proxy holds the stream back; sends with fetch, from an outbox that
// retries each message under its idempotency key until the server has it.
// Without this file the page still works: the forms post and the page reloads.
// User text is only ever set with textContent, names inside <bdi>, messages dir=auto.
'use strict';

(() => {
  const room = document.getElementById('room');
  if (!room) return;
  const { code, epoch, me } = room.dataset;
  let lastId = Number(room.dataset.lastId) || 0;
  // A stream that sends nothing, not even its `hello`, this long after opening
  // is held back by a proxy: poll instead, and try a stream again after
  // STREAM_AGAIN, then twice as long each time, up to STREAM_AGAIN_MAX.
  const HELLO_WAIT = 8000;
  const STREAM_AGAIN = 15000;
  const STREAM_AGAIN_MAX = 120000;
  const RETRY_MS = 2000; // the stream's `retry:` hint
  // The people list is refreshed from /members every PRESENCE_EVERY, and a
  // second after each notice, in a room of up to SMALL_ROOM people. A refresh
  // fetches everyone, so in a big room every tab doing that at every join would
  // cost people × people entries: there the list follows the events (joins,
  // leaves, owners) and is refreshed as much less often as the room is bigger,
  // each tab at a random moment.
  const PRESENCE_EVERY = 15000;
  const SMALL_ROOM = 50;
  const MAX_LOG_ENTRIES = 500; // a tab left open for days keeps only the newest
  // What a notice says after the name, as the server's page says it.
  const NOTICES = {
    join: 'has entered the room',
    leave: 'has left the room',
    lock: 'locked the room: no one new can join',
    unlock: 'unlocked the room',
    remove: 'was removed from the room by its owner',
    owner: 'is now the owner of the room',
  };
  const [log, present, status, form, input, error, pill, copy] = [
    'log', 'present', 'status', 'send', 'message', 'error', 'new-messages', 'copy-link',
  ].map((id) => document.getElementById(id));

  const setStatus = (text, state) => { status.textContent = text; status.dataset.state = state; };
  const showError = (text) => { error.textContent = text; error.hidden = !text; };
  // The reader's own clock, with the date for a day other than today.
  const today = (at) => at.toDateString() === new Date().toDateString();
  const localClock = (iso, at = new Date(iso)) =>
    at.toLocaleString([], { ...(!today(at) && { day: 'numeric', month: 'short' }), hour: '2-digit', minute: '2-digit' });
  const element = (tag, className, text) => {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  };
  const pause = (ms) => new Promise((done) => setTimeout(done, ms));
  // How long the server asked us to wait, if it did.
  const retryAfter = (response) => 1000 * Number(response?.headers.get('Retry-After')) || 0;

  // Times rendered by the server are UTC; show the reader's own clock.
  for (const time of log.querySelectorAll('time')) time.textContent = localClock(time.dateTime);

  const atBottom = () => log.scrollHeight - log.scrollTop - log.clientHeight < 48;
  const toBottom = () => { log.scrollTop = log.scrollHeight; pill.hidden = true; };
  log.addEventListener('scroll', () => atBottom() && (pill.hidden = true));
  pill.addEventListener('click', toBottom);

  // Drops the oldest entries; a reader scrolled up keeps their place (to the
  // pixel: what rounding leaves over is carried to the next trim).
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
    scrollOwed = Math.abs(rest) < 1 ? rest : 0; // more: the reader was at the very top
  }

  // A message's http(s) addresses as links, the rest as text, by the rule of
  // src/links.rs: split() puts each candidate at an odd index; what ends the
  // sentence around it (a `)` it did not open) is trimmed back into the text.
  const LINK = /(?<![\p{Alphabetic}\p{N}])(https?:\/\/\S+)/u;
  const withLinks = (text) => text.split(LINK).flatMap((part, odd) => {
    let url = part;
    while (odd % 2 && (/[.,;:!?'"]$/.test(url) || (url.endsWith(')') && url.split(')').length > url.split('(').length))) url = url.slice(0, -1);
    if (!(odd % 2 && /^https?:\/\/./.test(url))) return [part];
    return [Object.assign(element('a', '', url), { href: url, rel: 'noopener noreferrer nofollow ugc', target: '_blank' }), part.slice(url.length)];
  });
  const messageItem = (name, text, at) => {
    const item = element('li', name === me ? 'msg mine' : 'msg');
    const time = element('time', '', at ? localClock(at) : 'sending…');
    time.dateTime = at ?? '';
    item.append(element('bdi', 'who', name), ' ', time, Object.assign(element('p', 'text'), { dir: 'auto' }));
    item.lastChild.append(...withLinks(text));
    return item;
  };

  // While the tab is hidden the title counts others' messages, and each one is
  // notified if the person turned the bell on (marked when it names them).
  let [unread, title] = [0, document.title];
  const mention = new RegExp(`(^|[^\\p{L}\\p{N}])${me.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}(?![\\p{L}\\p{N}])`, 'iu');
  // Storage or Notification may be missing or blocked: then no notifications.
  const notifying = () => { try { return Notification.permission === 'granted' && localStorage.notify === 'on'; } catch { return false; } };
  document.addEventListener('visibilitychange', () => document.hidden || ([unread, document.title] = [0, title]));
  const bell = document.getElementById('bell');
  bell.hidden = !window.Notification;
  bell.setAttribute('aria-pressed', notifying());
  bell.addEventListener('click', async () => {
    localStorage.notify = !notifying() && (await Notification.requestPermission()) === 'granted' ? 'on' : 'off';
    bell.setAttribute('aria-pressed', notifying());
  });

  // Our own messages the server has taken but not yet sent back, by event id.
  const awaited = new Map();
  function show(event) {
    if (event.id <= lastId) return; // polls and reconnects may bring it again
    lastId = event.id;
    if (event.kind !== 'message' && !(event.kind in NOTICES)) return; // from a newer server
    // Our own message back from the server replaces its "sending…" stand-in:
    // known by its id once the send was answered, by its text before that.
    const mine = event.name === me && event.kind === 'message';
    const sameText = (li) => li.querySelector('.text').textContent === event.text;
    (awaited.get(event.id) ?? (mine ? [...log.querySelectorAll('.pending')].find(sameText) : null))?.remove();
    awaited.delete(event.id);
    const follow = atBottom();
    const item = event.kind === 'message' ? messageItem(event.name, event.text, event.at) : element('li', 'notice');
    if (event.kind === 'message' && event.name !== me && document.visibilityState === 'hidden') {
      document.title = `(${++unread}) ${title}`;
      if (notifying()) new Notification(mention.test(event.text) ? `${event.name} mentioned you` : event.name, { body: event.text, tag: code });
    }
    if (event.kind !== 'message') {
      item.append(element('bdi', '', event.name), ` ${NOTICES[event.kind]}`);
      if (event.kind === 'join' && !listed().some((p) => p.name === event.name)) {
        showPeople([...listed(), { name: event.name, connected: true, owner: false }]);
      }
      if (event.kind === 'owner') showPeople(listed().map((p) => ({ ...p, owner: p.name === event.name })));
      if (present.children.length <= SMALL_ROOM) presenceIn(1000);
    }
    if (event.kind === 'lock' || event.kind === 'unlock') showLocked(event.kind === 'lock');
    if (event.kind === 'remove' && event.name === me) close('The owner removed you from this room.');
    if (event.kind === 'owner' && event.name === me) {
      document.getElementById('lock').hidden = false;
      room.querySelector('.me').append(', the owner');
    }
    // Someone gone leaves the list at once (with the owner's Remove button).
    if (event.kind === 'leave' || event.kind === 'remove') {
      [...present.children].find((li) => li.querySelector('bdi')?.textContent === event.name)?.remove();
      counted();
    }
    item.dataset.id = event.id;
    log.insertBefore(item, log.querySelector('.pending')); // ours still sending stay last
    trimLog();
    if (follow || event.name === me) toBottom();
    else pill.hidden = false;
  }

  // One entry of the people list, as views/room.hbs renders it; the owner's
  // page offers to remove each of the others.
  const person = ({ name, connected, owner }, mine) => {
    const state = connected === true ? 'connected' : 'not connected';
    const item = element('li');
    item.dataset.connected = connected === true;
    item.dataset.owner = owner === true;
    const dot = Object.assign(element('span', 'dot'), { title: state });
    dot.setAttribute('aria-hidden', 'true');
    item.append(dot, element('bdi', '', String(name)));
    if (owner === true) item.append(' ', element('span', 'owner', 'owner'));
    item.append(' ', element('span', 'visually-hidden', state));
    if (mine && owner !== true) {
      const remove = Object.assign(element('form', 'remove'), { method: 'post', action: `/rooms/${code}/remove` });
      remove.append(Object.assign(element('input'), { type: 'hidden', name: 'name', value: String(name) }));
      remove.append(Object.assign(element('input'), { type: 'hidden', name: 'confirm', value: 'ask' }));
      remove.append(Object.assign(element('button', '', 'Remove'), { type: 'submit' }));
      item.append(remove);
    }
    return item;
  };
  const showLocked = (locked) => {
    document.getElementById('lock-state').hidden = !locked;
    document.getElementById('locked-badge').hidden = !locked;
    const lock = document.getElementById('lock'); // the owner's button (hidden for others)
    lock.action = `/rooms/${code}/${locked ? 'unlock' : 'lock'}`;
    lock.querySelector('button').textContent = locked ? 'Unlock the room' : 'Lock the room';
  };
  // The owner's buttons work without a page load; what they did comes as events.
  // Remove asks first here (without the script, the server's page asks).
  room.addEventListener('submit', async (submit) => {
    if (!submit.target.matches('form.remove, #lock')) return;
    submit.preventDefault();
    const body = new URLSearchParams(new FormData(submit.target));
    const ask = `Remove ${body.get('name')} from the room? They cannot come back.`;
    if (body.get('confirm') === 'ask' && !window.confirm(ask)) return;
    body.delete('confirm'); // asked: remove now
    const response = await fetch(submit.target.action, { method: 'POST', body }).catch(() => null);
    if (!response?.ok) showError(response ? (await response.text()).trim() : 'Not done: the server cannot be reached.');
  });
  // The list as shown, and showing one (the owner's page offers Remove).
  const listed = () => [...present.children].map((li) => ({
    name: li.querySelector('bdi')?.textContent ?? '',
    connected: li.dataset.connected === 'true',
    owner: li.dataset.owner === 'true',
  }));
  const showPeople = (people) => {
    const mine = people.some((p) => p.owner === true && p.name === me);
    present.replaceChildren(...people.map((p) => person(p, mine)));
    counted();
  };
  // The folded list's summary, "3 here". A wide screen shows the people and the
  // menu unfolded (the stylesheet, even without this script).
  const counted = () => (document.getElementById('people-count').textContent = `${present.children.length} here`);
  if (matchMedia('(min-width: 50rem)').matches) room.querySelectorAll('details').forEach((d) => (d.open = true));
  // An answer is used only if no later request has been made since.
  let presenceAsked = 0;
  let presenceSoon;
  const presenceIn = (ms) => {
    clearTimeout(presenceSoon);
    if (!closed) presenceSoon = setTimeout(refreshPresence, ms);
  };
  // Until the next refresh: longer the bigger the room, at a random point.
  const presenceWait = () => PRESENCE_EVERY * Math.max(1, present.children.length / SMALL_ROOM) * (0.5 + Math.random());
  async function refreshPresence() {
    const asked = ++presenceAsked;
    presenceIn(presenceWait());
    try {
      const response = await fetch(`/rooms/${code}/members`, { cache: 'no-store' });
      const people = response.ok ? await response.json() : null;
      if (asked === presenceAsked && Array.isArray(people)) showPeople(people);
    } catch {
      // A failed request changes nothing; the next one may do better.
    }
  }

  // Receiving. `restarting`: the server said it is going down (a `reconnect`
  // event), until we hear from it again.
  let source = null;
  let polling = null; // the AbortController of the polling loop, while it runs
  let restarting = false;
  let closed = false;
  let watchdog;
  let streamAgain;
  let streamAgainIn = STREAM_AGAIN;
  const watch = (ms, then) => { clearTimeout(watchdog); watchdog = setTimeout(then, ms); };
  const reconnecting = () =>
    setStatus(restarting ? 'The server is restarting: reconnecting…' : 'Reconnecting…', 'reconnecting');
  // We hear from the server: say how, and let waiting sends go at once.
  function connected(how) {
    restarting = false;
    if (status.dataset.state === how) return;
    setStatus(how === 'connected' ? 'Live' : 'Polling: your network holds live updates back, so the page asks for them', how);
    // After a restart every tab reconnects at once: a big room's spread out.
    presenceIn(present.children.length <= SMALL_ROOM ? 0 : presenceWait());
    wakeOutbox();
  }

  function openStream() {
    if (closed) return;
    source?.close();
    const stream = (source = new EventSource(`/rooms/${code}/events?epoch=${epoch}&after=${lastId}`));
    let heartbeat = 15000;
    let heard = false; // anything after `hello`: this stream got through
    watch(HELLO_WAIT, fallBack);
    // Silent past its heartbeat: a stream that never got further than `hello`
    // is held back; one that did has lost its network, so open a fresh one.
    const alive = () => watch(heartbeat + HELLO_WAIT, () => (heard ? openStream() : fallBack()));
    const on = (kind, then) => stream.addEventListener(kind, then);
    on('hello', (message) => {
      heartbeat = Number(JSON.parse(message.data).heartbeat_ms) || heartbeat;
      polling?.abort();
      polling = null;
      clearTimeout(streamAgain);
      streamAgainIn = STREAM_AGAIN;
      connected('connected');
      alive();
    });
    const heardFrom = () => { heard = true; alive(); };
    on('heartbeat', heardFrom);
    for (const kind of ['message', ...Object.keys(NOTICES)]) {
      on(kind, (message) => {
        heardFrom();
        show(JSON.parse(message.data));
      });
    }
    on('reset', startAfresh);
    // The server is going down and will be back: the browser reconnects by
    // itself (with Last-Event-ID, so nothing is lost); say why until it has.
    on('reconnect', () => { restarting = true; reconnecting(); });
    on('error', () => {
      if (stream !== source) return;
      // Closed for good (refused, or not a stream): a poll finds out whether we are still in.
      if (stream.readyState === EventSource.CLOSED) return fallBack();
      if (!polling) reconnecting();
      watch(RETRY_MS + HELLO_WAIT, fallBack); // the browser tries again after the hint
    });
  }

  function fallBack() {
    if (closed) return;
    source?.close();
    source = null;
    clearTimeout(watchdog);
    if (!polling) poll();
    clearTimeout(streamAgain);
    streamAgain = setTimeout(openStream, streamAgainIn);
    streamAgainIn = Math.min(2 * streamAgainIn, STREAM_AGAIN_MAX);
  }

  async function poll() {
    const running = (polling = new AbortController());
    // The first poll, and the first after a failure, answers at once: it shows
    // whether polling works without waiting for news.
    for (let failures = 0, quick = true; polling === running && !closed; quick = failures > 0) {
      const url = `/rooms/${code}/poll?epoch=${epoch}&after=${lastId}${quick ? '&wait=0' : ''}`;
      const response = await fetch(url, { cache: 'no-store', signal: running.signal })
        .catch(() => null); // the network, or aborted: the stream is back
      if (polling !== running) return;
      if (response?.status === 403) return close('You are no longer in this room.');
      if (response?.status === 404) {
        return close(restarting ? 'The server restarted without this room: it is gone.' : 'This room has ended.');
      }
      const answer = response?.ok ? await response.json().catch(() => null) : null;
      if (!Array.isArray(answer?.events)) {
        reconnecting();
        await pause(retryAfter(response) || Math.min(1000 * 2 ** failures++, 30000));
        continue;
      }
      failures = 0;
      connected('polling');
      for (const event of answer.events) {
        if (event.kind === 'reset') return startAfresh();
        show(event);
      }
    }
  }

  // Events we missed are no longer kept: reload the page, once our own
  // messages still sending have gone out.
  let afresh = false;
  function startAfresh() {
    afresh = true;
    source?.close();
    polling?.abort();
    if (!outbox.length) location.reload();
  }

  // The room is gone for this page: say why, hide what no longer works (the
  // stylesheet, by data-closed), offer the ways on, and put what was not sent
  // back in the composer so it is not lost.
  function close(why) {
    closed = true;
    for (const { item } of outbox) item.querySelector('time').textContent = 'not sent';
    input.value = [...outbox.map(({ text }) => text), input.value].filter(Boolean).join('\n');
    source?.close();
    polling?.abort();
    [watchdog, streamAgain, presenceSoon].forEach(clearTimeout);
    setStatus(why, 'closed');
    room.dataset.closed = '';
    document.getElementById('ended').hidden = false;
    form.addEventListener('submit', (submit) => { submit.preventDefault(); submit.stopImmediatePropagation(); }, true);
  }

  // Sending. Each message keeps one idempotency key until the server has it, so
  // a retry after a lost answer is stored once. It stays in the log as "sending…"
  // and goes again, in order, until the server takes (or refuses) it.
  const outbox = [];
  let sending = false;
  let wakeOutbox = () => {};
  const newKey = () => Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, '0')).join('');
  async function sendAll() {
    if (sending) return;
    sending = true;
    while (outbox.length && !closed) {
      const { key, text, item } = outbox[0];
      const body = new URLSearchParams({ message: text });
      const response = await fetch(form.action, { method: 'POST', headers: { 'Idempotency-Key': key }, body })
        .catch(() => null); // lost on the way, or its answer was
      const refused = response && !response.ok && response.status < 500 && ![408, 429].includes(response.status);
      if (!response?.ok && !refused) {
        await new Promise((wake) => setTimeout((wakeOutbox = wake), retryAfter(response) || 2000));
        continue;
      }
      outbox.shift();
      const id = Number(response.headers.get('Event-Id')); // without one, the text tells
      if (refused) {
        item.classList.replace('pending', 'failed');
        item.querySelector('time').textContent = 'not sent';
        showError((await response.text()).trim() || `Not sent (error ${response.status}).`);
      } else if (id > lastId) awaited.set(id, item);
      else if (id) item.remove();
    }
    sending = false;
    if (afresh) location.reload();
  }
  // The composer: Enter sends, Shift+Enter starts a new line. It grows with its
  // text (style.css caps it), and near the limit says how much room is left,
  // counting characters as the server does: a paste too long is kept whole.
  const over = () => [...input.value.trim()].length - Number(input.dataset.max);
  const chars = document.getElementById('chars-left');
  function fitComposer() {
    input.style.height = 'auto';
    input.style.height = `${input.scrollHeight + input.offsetHeight - input.clientHeight}px`;
    chars.hidden = over() <= -200;
    chars.textContent = over() > 0 ? `${over()} characters too long` : `${-over()} characters left`;
    input.setAttribute('aria-invalid', over() > 0);
  }
  input.addEventListener('input', fitComposer);
  input.addEventListener('keydown', (key) => {
    if (key.key === 'Enter' && !key.shiftKey && !key.isComposing) { key.preventDefault(); form.requestSubmit(); }
  });
  // Leaving the page would lose messages not yet sent: let the browser ask.
  addEventListener('beforeunload', (leaving) => outbox.length && leaving.preventDefault());
  form.addEventListener('submit', (submit) => {
    submit.preventDefault();
    const text = input.value.trim(); // as the server keeps it
    if (!text) return;
    if (over() > 0) return showError(`Not sent: the message is ${over()} characters too long.`);
    const item = messageItem(me, text);
    item.classList.add('pending');
    log.append(item);
    toBottom();
    outbox.push({ key: newKey(), text, item });
    input.value = '';
    fitComposer();
    showError('');
    input.focus();
    sendAll();
  });

  copy.hidden = false;
  copy.addEventListener('click', async () => {
    const link = `${location.origin}/rooms/${code}`; // the address this browser used
    try {
      await navigator.clipboard.writeText(link);
      copy.textContent = 'Copied!';
    } catch {
      window.prompt('Copy this link:', link);
    }
    setTimeout(() => (copy.textContent = 'Copy link'), 2000);
  });
  setStatus('Connecting…', 'connecting');
  openStream();
  trimLog();
  toBottom();
})();

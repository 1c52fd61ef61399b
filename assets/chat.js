// Live updates for the room page: receive with EventSource, send with fetch.
// Without this file the page still works: the forms post and the page reloads.
'use strict';

(() => {
  const room = document.getElementById('room');
  if (!room) return;
  const $ = (id) => document.getElementById(id);
  const { code, me } = room.dataset;
  let lastId = Number(room.dataset.lastId) || 0;
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
      item.append(element('span', 'who', event.name), ' ', time, element('p', 'text', event.text));
    } else {
      const verb = event.kind === 'join' ? 'entered' : 'left';
      item = element('li', 'notice', `${event.name} has ${verb} the room`);
    }
    item.dataset.id = event.id;
    log.append(item);
    if (follow || event.name === me) toBottom();
    else pill.hidden = false;
  }

  function updatePresence(event) {
    const here = [...present.children].find((li) => li.textContent === event.name);
    if (event.kind === 'join' && !here) present.append(element('li', '', event.name));
    if (event.kind === 'leave' && here) here.remove();
  }

  const source = new EventSource(`/rooms/${code}/events?after=${lastId}`);
  source.addEventListener('open', () => setStatus('Connected', 'connected'));
  source.addEventListener('error', () => {
    if (source.readyState === EventSource.CLOSED) {
      setStatus('Room closed: it ended, or you are no longer in it.', 'closed');
      form.hidden = true;
    } else {
      setStatus('Reconnecting…', 'reconnecting');
    }
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
  toBottom();
})();

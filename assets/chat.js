// Live updates for the room page: receive with EventSource, send with fetch.
// Without this file the page still works: the form posts and reloads the room.
'use strict';

(() => {
  const room = document.getElementById('room');
  if (!room) return;
  const code = room.dataset.code;
  const me = room.dataset.me;
  let lastId = Number(room.dataset.lastId) || 0;
  const log = document.getElementById('log');
  const present = document.getElementById('present');
  const status = document.getElementById('status');
  const form = document.getElementById('send');
  const input = document.getElementById('message');
  const error = document.getElementById('error');

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

  // Times on the server-rendered history are UTC; show the reader's own clock.
  for (const time of log.querySelectorAll('time')) time.textContent = localClock(time.dateTime);

  const following = () => log.scrollHeight - log.scrollTop - log.clientHeight < 48;

  function show(event) {
    // A reconnect replays from Last-Event-ID; anything already shown is skipped.
    if (event.id <= lastId) return;
    lastId = event.id;
    const follow = following();
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
    if (follow) log.scrollTop = log.scrollHeight;
  }

  function updatePresence(event) {
    const names = [...present.children].map((li) => li.textContent);
    if (event.kind === 'join' && !names.includes(event.name)) {
      present.append(element('li', '', event.name));
    } else if (event.kind === 'leave') {
      for (const li of present.children) if (li.textContent === event.name) li.remove();
    }
  }

  const source = new EventSource(`/rooms/${code}/events?after=${lastId}`);
  source.addEventListener('open', () => setStatus('Connected', 'connected'));
  source.addEventListener('error', () => {
    if (source.readyState === EventSource.CLOSED) {
      setStatus('This room has closed', 'closed');
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
  // Events we missed are no longer kept: start again from the page.
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
        showError((await response.text()).trim() || `Not sent (${response.status}).`);
      }
    } catch {
      showError('Not sent: the server cannot be reached. Check your connection.');
    }
    input.focus();
  });
  log.scrollTop = log.scrollHeight;
})();

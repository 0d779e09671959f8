/**
 * Team chat in the browser, against the real server: two members of one organisation in two
 * browser contexts chat in a DM live (messages, reactions, a thread, an image, typing, read
 * receipts, unread badges), and a tour of every chat panel (browse, new channel, mentions,
 * markdown, pins, search and jump, edit/delete/forward/quote, settings with disappearing
 * messages, lock/unlock and archive).
 */
import { deflateSync } from 'node:zlib';

import { expect, test, type APIRequestContext, type Locator, type Page } from '@playwright/test';

import { PASSWORD, bearer, expectToast, registerViaApi, uniqueEmail, useSession, type Auth } from './helpers';

/** A valid `size`×`size` solid red RGB PNG, encoded here (zlib for the pixels, CRC-32 per chunk). */
function redPng(size: number): Buffer {
  const crcTable = Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  const crc = (buf: Buffer) => {
    let c = 0xffffffff;
    for (const b of buf) c = crcTable[(c ^ b) & 0xff]! ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
  };
  const chunk = (type: string, data: Buffer) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const body = Buffer.concat([Buffer.from(type, 'ascii'), data]);
    const sum = Buffer.alloc(4);
    sum.writeUInt32BE(crc(body));
    return Buffer.concat([len, body, sum]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(size, 0);
  ihdr.writeUInt32BE(size, 4);
  ihdr.set([8, 2, 0, 0, 0], 8); // 8-bit RGB
  const row = Buffer.concat([Buffer.from([0]), Buffer.alloc(size * 3, Buffer.from([220, 30, 30]))]);
  const pixels = deflateSync(Buffer.concat(Array.from({ length: size }, () => row)));
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('IDAT', pixels),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}
const PNG = redPng(64);

/** Invites a teammate into `owner`'s organisation and accepts: a second member, signed in. */
async function addMember(request: APIRequestContext, owner: Auth, name: string): Promise<Auth> {
  const email = uniqueEmail('mate');
  const inv = await request.post('/api/v1/invitations', {
    headers: bearer(owner.access_token),
    data: { email, role: 'agent' },
  });
  expect(inv.status(), await inv.text()).toBe(201);
  const token = ((await inv.json()) as { invite_url: string }).invite_url.split('/').pop()!;
  const res = await request.post(`/api/v1/auth/invitations/${token}/accept`, { data: { name, password: PASSWORD } });
  expect(res.status(), await res.text()).toBe(200);
  return (await res.json()) as Auth;
}

async function createChannelViaApi(request: APIRequestContext, who: Auth, name: string, memberIds: string[] = []) {
  const res = await request.post('/api/v1/chat/channels', {
    headers: bearer(who.access_token),
    data: { kind: 'public', name, member_ids: memberIds },
  });
  expect(res.status(), await res.text()).toBe(201);
  return (await res.json()) as { id: string };
}

const sidebar = (page: Page) => page.getByTestId('chat-sidebar');
const composer = (page: Page) => page.getByTestId('composer').getByRole('textbox', { name: 'Message' });
const message = (page: Page, text: string | RegExp) => page.getByTestId('message').filter({ hasText: text });

async function send(page: Page, text: string) {
  await composer(page).fill(text);
  await composer(page).press('Enter');
  await expect(message(page, text).last()).toBeVisible();
}

async function messageAction(page: Page, msg: Locator, action: string) {
  await msg.hover();
  await msg.getByRole('button', { name: 'More actions' }).click();
  await page.getByRole('menuitem', { name: action }).click();
}

// An uncaught exception in the page fails the test, even when the screen looks right.
let pageErrors: Error[] = [];
test.beforeEach(({ page }) => {
  pageErrors = [];
  page.on('pageerror', (e) => pageErrors.push(e));
});
test.afterEach(() => {
  expect(pageErrors.map((e) => e.message)).toEqual([]);
});

test('two members chat in a DM live: message, reaction, thread, image, typing, receipts, unread badge', async ({
  page,
  browser,
  request,
}) => {
  // Long user journeys (two contexts, many steps): room for a loaded CI machine.
  test.slow();
  const owner = await registerViaApi(request, 'owner');
  const mate = await addMember(request, owner, 'Mia Mate');
  const general = await createChannelViaApi(request, owner, 'general', [mate.user.id]);

  const mateContext = await browser.newContext();
  const matePage = await mateContext.newPage();
  await useSession(page, owner);
  await useSession(matePage, mate);

  let dmUrl = '';
  await test.step('the owner starts a DM with the teammate from "New message"', async () => {
    await page.goto('/chat');
    await expect(sidebar(page).getByTestId('channel-item').filter({ hasText: 'general' })).toBeVisible();
    await sidebar(page).getByRole('button', { name: 'New message' }).click();
    const dialog = page.getByRole('dialog', { name: 'New message' });
    await dialog.getByRole('textbox', { name: 'To' }).click();
    await page.getByRole('option', { name: /Mia Mate/ }).click();
    await dialog.locator('.mantine-Modal-title').click(); // closes the picker's dropdown
    await dialog.getByRole('button', { name: 'Start conversation' }).click();
    await expect(page).toHaveURL(/\/chat\/[0-9a-f-]{36}$/);
    await expect(page.getByTestId('channel-title')).toHaveText('Mia Mate');
    await expect(page.getByText('No messages yet')).toBeVisible();
    dmUrl = new URL(page.url()).pathname;
  });

  await test.step('the teammate sees the DM appear and opens it', async () => {
    await matePage.goto('/chat');
    const dm = sidebar(matePage).getByTestId('channel-item').filter({ hasText: owner.user.name });
    await expect(dm).toBeVisible();
    // The owner is online: a green presence dot on the DM.
    await expect(dm.getByTestId('presence-dot')).toHaveAttribute('data-status', 'online');
    await dm.click();
    await expect(matePage).toHaveURL(dmUrl);
  });

  await test.step('typing shows in the other context, a message appears live without reload', async () => {
    await composer(page).fill('Hello fr');
    await expect(matePage.getByTestId('typing-line')).toHaveText(`${owner.user.name} is typing…`);
    await composer(page).fill('Hello from the owner');
    await composer(page).press('Enter');
    await expect(message(matePage, 'Hello from the owner')).toBeVisible();
    await expect(matePage.getByTestId('typing-line')).toHaveText('');
    await send(matePage, 'Hi back from Mia');
    await expect(message(page, 'Hi back from Mia')).toBeVisible();
    // The teammate has read the owner's message: the owner sees the read tick.
    await expect(message(page, 'Hello from the owner').getByTestId('receipt')).toHaveAttribute('data-read', 'true');
  });

  await test.step('a reaction shows live on the other side', async () => {
    const msg = message(page, 'Hi back from Mia');
    await msg.hover();
    await msg.getByRole('button', { name: 'React 👍' }).click();
    await expect(msg.getByRole('button', { name: '👍 1' })).toHaveAttribute('aria-pressed', 'true');
    const there = message(matePage, 'Hi back from Mia');
    await expect(there.getByRole('button', { name: '👍 1' })).toHaveAttribute('aria-pressed', 'false');
  });

  await test.step('a thread reply: reply count on the parent, the reply in the thread panel', async () => {
    const parent = message(matePage, 'Hello from the owner');
    await parent.hover();
    await parent.getByRole('button', { name: 'Reply in thread' }).click();
    const thread = matePage.getByTestId('thread-panel');
    await expect(thread.getByText('No replies yet')).toBeVisible();
    const reply = thread.getByRole('textbox', { name: 'Reply in thread' });
    await reply.fill('A reply in the thread');
    await reply.press('Enter');
    await expect(thread.getByTestId('message').filter({ hasText: 'A reply in the thread' })).toBeVisible();
    await expect(thread.getByTestId('thread-reply-count')).toHaveText('1 reply');

    const count = message(page, 'Hello from the owner').getByTestId('reply-count');
    await expect(count).toHaveText('1 reply');
    await count.click();
    await expect(
      page.getByTestId('thread-panel').getByTestId('message').filter({ hasText: 'A reply in the thread' }),
    ).toBeVisible();
    // Thread replies stay out of the main history.
    await expect(message(page, 'A reply in the thread')).toHaveCount(1);
    await page.getByRole('button', { name: 'Close thread' }).click();
  });

  await test.step('an image is uploaded, sent and shown to the other member', async () => {
    await page
      .getByTestId('composer')
      .getByTestId('file-input')
      .setInputFiles({ name: 'red.png', mimeType: 'image/png', buffer: PNG });
    await expect(page.getByTestId('pending-attachment')).toHaveAttribute('data-status', 'done');
    await composer(page).fill('a picture');
    await composer(page).press('Enter');
    await expect(page.getByTestId('pending-attachment')).toHaveCount(0);
    const img = message(matePage, 'a picture').getByTestId('attachment-image').locator('img');
    await expect(img).toHaveAttribute('src', /^blob:/);
    await expect.poll(() => img.evaluate((el: HTMLImageElement) => el.naturalWidth)).toBeGreaterThan(0);
  });

  await test.step('a view-once photo opens once for the recipient', async () => {
    await page.getByTestId('composer').getByRole('button', { name: 'Attach files' }).click();
    const chooser = page.waitForEvent('filechooser');
    await page.getByRole('menuitem', { name: 'Upload view-once media' }).click();
    await (await chooser).setFiles({ name: 'secret.png', mimeType: 'image/png', buffer: PNG });
    await expect(page.getByTestId('pending-attachment')).toHaveAttribute('data-status', 'done');
    await composer(page).fill('for your eyes only');
    await composer(page).press('Enter');
    const there = message(matePage, 'for your eyes only');
    await there.getByTestId('view-once').click();
    const dialog = matePage.getByRole('dialog', { name: 'secret.png (view once)' });
    await expect(dialog.locator('img')).toHaveAttribute('src', /^blob:/);
    await matePage.keyboard.press('Escape');
    await expect(there.getByTestId('view-once-opened')).toBeVisible();
    // The server remembers: after a reload it is still spent.
    await matePage.reload();
    await expect(message(matePage, 'for your eyes only').getByTestId('view-once-opened')).toBeVisible();
  });

  await test.step('a message in a channel the teammate is not viewing bumps its unread badge', async () => {
    const item = sidebar(matePage).getByTestId('channel-item').filter({ hasText: 'general' });
    await expect(item.getByTestId('unread-badge')).toHaveCount(0);
    await page.goto(`/chat/${general.id}`);
    await send(page, 'News for the whole channel');
    await expect(item.getByTestId('unread-badge')).toHaveText('1');
    await expect(item.getByTestId('channel-preview')).toHaveText('News for the whole channel');
    await send(page, `Ping @channel please`);
    await expect(item.getByTestId('unread-badge')).toHaveText('2');
    await expect(item.getByTestId('mention-badge')).toHaveText('@1');
    await expect(matePage.getByTestId('chat-nav-badge')).toBeVisible();
    // Opening it reads it: the badges go.
    await item.click();
    await expect(message(matePage, 'News for the whole channel')).toBeVisible();
    await expect(item.getByTestId('unread-badge')).toHaveCount(0);
    await expect(item.getByTestId('mention-badge')).toHaveCount(0);
    await matePage.reload();
    await expect(sidebar(matePage).getByTestId('channel-item').filter({ hasText: 'general' })).toBeVisible();
    await expect(sidebar(matePage).getByTestId('unread-badge')).toHaveCount(0);
  });

  await mateContext.close();
});

test('every chat panel: browse, new channel, mentions, markdown, pins, search, edit/delete/forward/quote, settings, lock, archive', async ({
  page,
  request,
}) => {
  // Long user journeys (two contexts, many steps): room for a loaded CI machine.
  test.slow();
  const owner = await registerViaApi(request, 'owner');
  const mate = await addMember(request, owner, 'Teo Teammate');
  await useSession(page, owner);

  await test.step('empty chat: no conversations, browse shows no channels', async () => {
    await page.goto('/team-chat');
    await expect(page).toHaveURL(/\/chat$/);
    await expect(page.getByTestId('not-built')).toHaveCount(0);
    await expect(sidebar(page).getByText('No conversations yet')).toBeVisible();
    await expect(page.getByText('Pick a conversation')).toBeVisible();
    await sidebar(page).getByRole('button', { name: 'Browse channels' }).click();
    const dialog = page.getByRole('dialog', { name: 'Browse channels' });
    await expect(dialog.getByText('No public channels yet')).toBeVisible();
    await page.keyboard.press('Escape');
  });

  await test.step('create a channel from the UI', async () => {
    await sidebar(page).getByRole('button', { name: 'New channel' }).click();
    const dialog = page.getByRole('dialog', { name: 'New channel' });
    await dialog.getByLabel('Name').fill('bad/name');
    await dialog.getByRole('button', { name: 'Create channel' }).click();
    await expect(dialog.getByText('Letters, digits, spaces, - and _ only')).toBeVisible();
    await dialog.getByLabel('Name').fill('release-planning');
    await dialog.getByLabel('Topic').fill('Shipping the next version');
    await dialog.getByRole('button', { name: 'Create channel' }).click();
    await expectToast(page, 'Channel #release-planning created');
    await expect(page.getByTestId('channel-title')).toHaveText('# release-planning');
    await expect(page.getByTestId('channel-topic')).toHaveText('Shipping the next version');
    await expect(page.getByText('No messages yet')).toBeVisible();
  });

  await test.step('a mention picked from the autocomplete, markdown rendered safely', async () => {
    const settings = page.getByRole('button', { name: 'Channel settings', exact: true });
    await settings.click();
    const panel = page.getByTestId('settings-panel');
    await panel.getByRole('textbox', { name: 'Add members' }).click();
    await page.getByRole('option', { name: 'Teo Teammate' }).click();
    await panel.getByRole('button', { name: 'Add', exact: true }).click();
    await expectToast(page, 'Members added');
    await expect(panel.getByTestId('channel-member')).toHaveCount(2);
    await settings.click();

    await composer(page).fill('Welcome @Te');
    await page.getByRole('option', { name: 'Teo Teammate' }).click();
    await expect(composer(page)).toHaveValue(`Welcome @[Teo Teammate](user:${mate.user.id}) `);
    await composer(page).press('End');
    await composer(page).pressSequentially('to the team');
    await composer(page).press('Enter');
    const welcome = message(page, 'Welcome');
    await expect(welcome.getByTestId('mention')).toHaveText('@Teo Teammate');

    await composer(page).fill('**Release** notes with `code` and <b>no html</b> [docs](https://example.com)');
    await composer(page).press('Enter');
    const md = message(page, 'Release notes with code and <b>no html</b> docs');
    await expect(md).toBeVisible();
    await expect(md.locator('strong')).toHaveText('Release');
    await expect(md.locator('code')).toHaveText('code');
    await expect(md.locator('b')).toHaveCount(0);
    await expect(md.getByRole('link', { name: 'docs' })).toHaveAttribute('href', 'https://example.com');
  });

  await test.step('pin a message and find it in the pins panel', async () => {
    await page.getByRole('button', { name: 'Pinned messages', exact: true }).click();
    await expect(page.getByTestId('pins-panel').getByText('No pinned messages')).toBeVisible();
    await messageAction(page, message(page, 'Release'), 'Pin');
    await expectToast(page, 'Message pinned');
    await expect(message(page, 'Release').getByTestId('pinned-badge')).toBeVisible();
    await expect(page.getByTestId('pins-panel').getByTestId('message-hit')).toHaveCount(1);
    await page.getByTestId('pins-panel').getByRole('button', { name: 'Jump to message' }).click();
    await expect(page).toHaveURL(/around=/);
    await expect(message(page, 'Release')).toHaveAttribute('data-highlight', 'true');
  });

  await test.step('search messages and jump to a result', async () => {
    for (let i = 1; i <= 3; i++) await send(page, `filler message ${i}`);
    await page.getByRole('button', { name: 'Search messages', exact: true }).click();
    const panel = page.getByTestId('search-panel');
    await expect(panel.getByText('Search messages').first()).toBeVisible();
    await panel.getByRole('textbox', { name: 'Search messages' }).fill('zzzznothing');
    await expect(panel.getByText('No messages match')).toBeVisible();
    await panel.getByRole('textbox', { name: 'Search messages' }).fill('welcome');
    await expect(panel.getByTestId('message-hit')).toHaveCount(1);
    await panel.getByText('All channels', { exact: true }).click();
    await expect(panel.getByTestId('message-hit')).toHaveCount(1);
    await panel.getByRole('button', { name: 'Jump to message' }).click();
    await expect(message(page, 'Welcome')).toHaveAttribute('data-highlight', 'true');
  });

  await test.step('edit, quote-reply, forward, delete', async () => {
    await page.getByRole('button', { name: 'Close search' }).click();
    await messageAction(page, message(page, 'filler message 1'), 'Edit');
    const edit = page.getByRole('textbox', { name: 'Edit message' });
    await edit.fill('filler message one');
    await edit.press('Enter');
    await expect(message(page, 'filler message one').getByTestId('edited')).toHaveText('(edited)');

    await messageAction(page, message(page, 'filler message 2'), 'Quote reply');
    await expect(page.getByTestId('quote-preview')).toContainText('filler message 2');
    await send(page, 'answering the quote');
    await expect(message(page, 'answering the quote').getByTestId('quote')).toContainText('filler message 2');

    const dm = await request.post('/api/v1/chat/dms', {
      headers: bearer(owner.access_token),
      data: { user_ids: [mate.user.id] },
    });
    expect([200, 201]).toContain(dm.status());
    await messageAction(page, message(page, 'filler message 3'), 'Forward');
    const dialog = page.getByRole('dialog', { name: 'Forward message' });
    await dialog.getByRole('textbox', { name: 'Forward to' }).click();
    await page.getByRole('option', { name: 'Teo Teammate' }).click();
    await dialog.getByRole('button', { name: 'Forward' }).click();
    await expectToast(page, 'Message forwarded');

    await messageAction(page, message(page, 'filler message one'), 'Delete');
    await page.getByRole('dialog').getByRole('button', { name: 'Delete' }).click();
    await expect(page.getByTestId('message-deleted')).toHaveCount(1);
    await expect(message(page, 'filler message one')).toHaveCount(0);

    await sidebar(page).getByTestId('channel-item').filter({ hasText: 'Teo Teammate' }).click();
    await expect(message(page, 'filler message 3').getByTestId('forwarded')).toContainText(
      `Forwarded from ${owner.user.name}`,
    );
    await sidebar(page).getByTestId('channel-item').filter({ hasText: 'release-planning' }).click();
  });

  await test.step('settings: topic, disappearing messages, lock and unlock', async () => {
    await page.getByRole('button', { name: 'Channel settings', exact: true }).click();
    const panel = page.getByTestId('settings-panel');
    await panel.getByLabel('Topic').fill('Ship it');
    await panel.getByRole('button', { name: 'Save channel' }).click();
    await expectToast(page, 'Channel saved');
    await expect(page.getByTestId('channel-topic')).toHaveText('Ship it');

    await panel.getByText('24 hours').click();
    await expectToast(page, 'New messages disappear after 24 hours');
    await expect(page.getByTestId('disappearing-badge')).toContainText('24 hours');
    await send(page, 'this one disappears');
    await panel.getByText('Off', { exact: true }).click();
    await expect(page.getByTestId('disappearing-badge')).toHaveCount(0);

    await panel.getByRole('button', { name: 'Lock this chat' }).click();
    const lock = page.getByRole('dialog', { name: 'Lock this chat' });
    await lock.getByLabel('Your password').fill('wrong-password-123');
    await lock.getByRole('button', { name: 'Lock' }).click();
    await expect(lock.locator('.mantine-InputWrapper-error')).toBeVisible();
    await lock.getByLabel('Your password').fill(PASSWORD);
    await lock.getByRole('button', { name: 'Lock' }).click();
    await expectToast(page, 'Chat locked');
    const item = sidebar(page).getByTestId('channel-item').filter({ hasText: 'release-planning' });
    await expect(item).toContainText('Locked');
    await expect(item.getByTestId('channel-preview')).toHaveCount(0);

    await page.reload();
    const prompt = page.getByTestId('unlock-prompt');
    await expect(prompt).toBeVisible();
    await expect(page.getByTestId('message')).toHaveCount(0);
    await prompt.getByLabel('Your password').fill(PASSWORD);
    await prompt.getByRole('button', { name: 'Unlock' }).click();
    await expect(message(page, 'answering the quote')).toBeVisible();

    // The open panel is in the URL: still there after the reload.
    await expect(page).toHaveURL(/panel=settings/);
    await page.getByTestId('settings-panel').getByRole('button', { name: 'Remove lock' }).click();
    const unlock = page.getByRole('dialog', { name: 'Remove the lock' });
    await unlock.getByLabel('Your password').fill(PASSWORD);
    await unlock.getByRole('button', { name: 'Remove lock' }).click();
    await expectToast(page, 'Lock removed');
    await expect(item.getByTestId('channel-preview')).toBeVisible();
  });

  await test.step('browse and join a channel someone else made, then archive ours', async () => {
    await createChannelViaApi(request, mate, 'random');
    await sidebar(page).getByRole('button', { name: 'Browse channels' }).click();
    const dialog = page.getByRole('dialog', { name: 'Browse channels' });
    await expect(dialog.getByTestId('browse-row')).toHaveCount(2);
    await dialog.getByRole('textbox', { name: 'Find a channel' }).fill('rand');
    await expect(dialog.getByTestId('browse-row')).toHaveCount(1);
    await dialog.getByRole('button', { name: 'Join random' }).click();
    await expectToast(page, 'Joined #random');
    await expect(page.getByTestId('channel-title')).toHaveText('# random');
    await expect(sidebar(page).getByTestId('channel-item').filter({ hasText: 'random' })).toBeVisible();

    await sidebar(page).getByTestId('channel-item').filter({ hasText: 'release-planning' }).click();
    await page.getByRole('button', { name: 'Channel settings', exact: true }).click();
    await page.getByTestId('settings-panel').getByRole('button', { name: 'Archive channel' }).click();
    await page.getByRole('dialog', { name: 'Archive channel' }).getByRole('button', { name: 'Archive' }).click();
    await expectToast(page, 'Channel archived');
    await expect(page).toHaveURL(/\/chat$/);
    await expect(sidebar(page).getByTestId('channel-item').filter({ hasText: 'release-planning' })).toHaveCount(0);
  });
});

test('long history: virtual scrolling loads older pages, search jumps into the past and back', async ({
  page,
  request,
}) => {
  const owner = await registerViaApi(request, 'owner');
  const channel = await createChannelViaApi(request, owner, 'history');
  for (let i = 1; i <= 130; i++) {
    const text = i === 10 ? 'the needle in the haystack' : `history line ${i}`;
    const res = await request.post(`/api/v1/chat/channels/${channel.id}/messages`, {
      headers: bearer(owner.access_token),
      data: { text },
    });
    expect(res.status(), await res.text()).toBe(201);
  }
  await useSession(page, owner);
  await page.goto(`/chat/${channel.id}`);
  await expect(message(page, 'history line 130')).toBeVisible();
  await expect(page.getByTestId('history-start')).toHaveCount(0);
  // Only what is on screen (plus overscan) is in the DOM.
  expect(await page.getByTestId('message').count()).toBeLessThan(60);

  await test.step('scrolling up loads the older pages until the beginning', async () => {
    const list = page.getByTestId('message-list');
    await expect
      .poll(
        async () => {
          await list.evaluate((el) => el.scrollTo({ top: 0 }));
          return page.getByTestId('history-start').count();
        },
        { timeout: 20_000 },
      )
      .toBe(1);
    await expect(message(page, 'history line 1').first()).toBeVisible();
    expect(await page.getByTestId('message').count()).toBeLessThan(60);
  });

  await test.step('a search result deep in the past is shown around its message, then back to the latest', async () => {
    await page.goto(`/chat/${channel.id}`);
    await expect(message(page, 'history line 130')).toBeVisible();
    await page.getByRole('button', { name: 'Search messages', exact: true }).click();
    await page.getByTestId('search-panel').getByRole('textbox', { name: 'Search messages' }).fill('needle');
    await expect(page.getByTestId('search-panel').getByTestId('message-hit')).toHaveCount(1);
    await page.getByTestId('search-panel').getByRole('button', { name: 'Jump to message' }).click();
    await expect(page).toHaveURL(/around=/);
    await expect(message(page, 'the needle in the haystack')).toHaveAttribute('data-highlight', 'true');
    await expect(message(page, 'history line 130')).toHaveCount(0);
    await page.getByRole('button', { name: 'Jump to latest' }).click();
    await expect(message(page, 'history line 130')).toBeVisible();
    await expect(page).not.toHaveURL(/around=/);
  });
});

test('an expired access token: the socket reconnects with a refreshed one and stays live', async ({
  page,
  request,
}) => {
  const owner = await registerViaApi(request, 'owner');
  const mate = await addMember(request, owner, 'Lia Live');
  const dm = await request.post('/api/v1/chat/dms', {
    headers: bearer(mate.access_token),
    data: { user_ids: [owner.user.id] },
  });
  expect(dm.status(), await dm.text()).toBe(201);
  const { id } = (await dm.json()) as { id: string };
  await useSession(page, { ...owner, access_token: 'expired-or-garbage' });
  await page.goto(`/chat/${id}`);
  await expect(page.getByText('No messages yet')).toBeVisible();
  await expect(page.getByTestId('socket-offline')).toHaveCount(0);
  const res = await request.post(`/api/v1/chat/channels/${id}/messages`, {
    headers: bearer(mate.access_token),
    data: { text: 'still live after the refresh' },
  });
  expect(res.status()).toBe(201);
  await expect(message(page, 'still live after the refresh')).toBeVisible();
});

test('a voice message: recorded with the microphone, sent with its waveform, played back', async ({
  playwright,
  baseURL,
}) => {
  // A browser of our own with a fake microphone (a tone), allowed without a prompt.
  const browser = await playwright.chromium.launch({
    executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
    args: [
      '--no-sandbox',
      '--headless',
      '--disable-gpu',
      '--use-fake-device-for-media-stream',
      '--use-fake-ui-for-media-stream',
      '--autoplay-policy=no-user-gesture-required',
    ],
  });
  try {
    const context = await browser.newContext({ baseURL, permissions: ['microphone'] });
    const page = await context.newPage();
    const request = context.request;
    const owner = await registerViaApi(request, 'owner');
    const channel = await createChannelViaApi(request, owner, 'voice');
    await useSession(page, owner);
    await page.goto(`/chat/${channel.id}`);
    await expect(page.getByText('No messages yet')).toBeVisible();

    await page.getByRole('button', { name: 'Record voice message' }).click();
    await expect(page.getByTestId('voice-recording')).toBeVisible();
    await page.waitForTimeout(1_600);
    await page.getByRole('button', { name: 'Stop and send voice message' }).click();

    const voice = page.getByTestId('voice-message');
    await expect(voice).toBeVisible();
    await expect(voice.getByTestId('voice-duration')).toHaveText(/^0:0[1-3]$/);
    // The tone is loud: the stored waveform has bars above silence.
    const bars = voice.getByTestId('waveform').locator('span');
    await expect(bars).toHaveCount(40);
    const heights = await bars.evaluateAll((els) => els.map((e) => parseFloat((e as HTMLElement).style.height)));
    expect(Math.max(...heights)).toBe(100);

    const list = await request.get(`/api/v1/chat/channels/${channel.id}/messages`, {
      headers: bearer(owner.access_token),
    });
    const att = (
      (await list.json()) as { items: { attachments: { kind: string; duration_ms: number; waveform: number[] }[] }[] }
    ).items[0]!.attachments[0]!;
    expect(att.kind).toBe('voice');
    expect(att.duration_ms).toBeGreaterThan(1_000);
    expect(att.waveform.length).toBeGreaterThan(10);

    await voice.getByRole('button', { name: 'Play voice message' }).click();
    await expect(voice.getByRole('button', { name: 'Pause voice message' })).toBeVisible();
    await context.close();
  } finally {
    await browser.close();
  }
});

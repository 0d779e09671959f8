/**
 * The shared inbox in the browser, against the real server and its Sandbox channel: connect a
 * Sandbox channel in settings → simulate a customer from the inbox → the message arrives live in
 * the list and the thread → assign to me → reply (delivered, then read: the sandbox customer
 * reads automatically) → private note → resolve → it leaves the Open filter. Also canned
 * responses: created in settings, then inserted with `/shortcut` and their variables filled in;
 * and templates: the channel's approved ones picked in the composer, filled in for the contact.
 */
import { expect, test, type APIRequestContext, type Page } from '@playwright/test';

import { bearer, expectToast, registerViaApi, useSession, type Auth } from './helpers';

// An uncaught exception in the page fails the test, even when the screen looks right.
let pageErrors: Error[] = [];
test.beforeEach(({ page }) => {
  pageErrors = [];
  page.on('pageerror', (e) => pageErrors.push(e));
});
test.afterEach(() => {
  expect(pageErrors.map((e) => e.message)).toEqual([]);
});

const list = (page: Page) => page.getByTestId('conversation-list');
const thread = (page: Page) => page.getByTestId('thread');
const bubble = (page: Page, text: string) => thread(page).getByTestId('message').filter({ hasText: text });

async function sandboxViaApi(request: APIRequestContext, who: Auth): Promise<{ id: string }> {
  const res = await request.post('/api/v1/channels', {
    headers: bearer(who.access_token),
    data: { kind: 'sandbox', name: 'Sandbox', config: { auto_read: true } },
  });
  expect(res.status(), await res.text()).toBe(201);
  return (await res.json()) as { id: string };
}

/**
 * A simulated customer message. The server answers 202 once the event is stored (it is processed
 * like a real webhook, by the job queue), so the conversation is looked up until it exists.
 */
async function simulateViaApi(request: APIRequestContext, who: Auth, channelId: string, text: string) {
  const res = await request.post(`/api/v1/channels/${channelId}/simulate`, {
    headers: bearer(who.access_token),
    data: { from: { handle: 'ada', name: 'Ada Lovelace' }, text },
  });
  expect(res.status(), await res.text()).toBe(202);
  let conversation_id = '';
  await expect
    .poll(async () => {
      const list = await request.get('/api/v1/conversations', {
        headers: bearer(who.access_token),
        params: { channel_id: channelId, status: 'all', q: text },
      });
      const items = ((await list.json()) as { items: { id: string }[] }).items;
      conversation_id = items[0]?.id ?? '';
      return conversation_id;
    })
    .not.toBe('');
  return { conversation_id };
}

test('sandbox journey: simulate → live → assign → reply with ticks → note → resolve', async ({ page, request }) => {
  test.slow();
  const owner = await registerViaApi(request, 'owner');
  await useSession(page, owner);

  await test.step('connect a Sandbox channel in settings', async () => {
    await page.goto('/settings/channels');
    await expect(page.getByText('No channels yet')).toBeVisible();
    await page.getByRole('button', { name: 'Connect channel' }).first().click();
    const dialog = page.getByRole('dialog', { name: 'Connect channel' });
    await dialog.getByRole('button', { name: 'Sandbox' }).click();
    await dialog.getByLabel('Name').fill('Playground');
    await expect(dialog.getByRole('switch', { name: 'Customer reads at once' })).toBeChecked();
    await dialog.getByRole('button', { name: 'Connect Sandbox' }).click();
    await expect(dialog.getByTestId('connect-result')).toContainText('Playground is connected');
    await dialog.getByRole('link', { name: 'Go to the inbox' }).click();
  });

  await test.step('the empty inbox guides, and offers the simulator', async () => {
    await expect(page).toHaveURL(/\/inbox$/);
    await expect(page.getByText('No conversations yet — connect a channel or try the Sandbox')).toBeVisible();
    await expect(list(page).getByTestId('count-all')).toHaveText('0');
  });

  const drawer = page.getByRole('dialog', { name: 'Simulate customer' });
  const row = list(page).getByTestId('conversation-item').filter({ hasText: 'Ada Lovelace' });

  await test.step('a simulated customer message appears live in the list', async () => {
    await page.getByRole('button', { name: 'Simulate customer' }).click();
    await expect(drawer.getByLabel('Customer handle')).toHaveValue('ada');
    await expect(drawer.getByLabel('Customer name')).toHaveValue('Ada Lovelace');
    await drawer.getByLabel('Message').fill('Hello, where is my order?');
    await drawer.getByRole('button', { name: 'Send as customer' }).click();
    await expect(row).toBeVisible();
    await expect(row.getByTestId('conversation-preview')).toHaveText('Hello, where is my order?');
    await expect(row.getByTestId('unread-badge')).toHaveText('1');
    await expect(list(page).getByTestId('count-unassigned')).toHaveText('1');
  });

  await test.step('opening it shows the thread and clears the unread badge; a second message arrives live', async () => {
    await row.click();
    await expect(page).toHaveURL(/\/inbox\/[0-9a-f-]{36}$/);
    await expect(page.getByTestId('conversation-title')).toHaveText('Ada Lovelace');
    await expect(bubble(page, 'Hello, where is my order?')).toHaveAttribute('data-direction', 'inbound');
    await expect(row.getByTestId('unread-badge')).toHaveCount(0);
    await drawer.getByLabel('Message').fill('Order number is 4711');
    await drawer.getByRole('button', { name: 'Send as customer' }).click();
    await expect(bubble(page, 'Order number is 4711')).toBeVisible();
    // Read at once: it is on screen.
    await expect(row.getByTestId('unread-badge')).toHaveCount(0);
    await expect(row.getByTestId('conversation-preview')).toHaveText('Order number is 4711');
    await drawer.getByRole('button', { name: 'Close the simulator' }).click();
    await expect(drawer).toBeHidden();
  });

  await test.step('assign to me', async () => {
    await page.getByRole('button', { name: 'Assign to me' }).click();
    await expect(page.getByRole('textbox', { name: 'Assignee' })).toHaveValue(owner.user.name);
    await expect(page.getByRole('button', { name: 'Assign to me' })).toHaveCount(0);
    await expect(row.getByTestId('assignee-avatar')).toBeVisible();
    await expect(list(page).getByTestId('count-mine')).toHaveText('1');
  });

  await test.step('reply: queued/sent, then delivered, then read (the sandbox customer reads it)', async () => {
    const reply = page.getByRole('textbox', { name: 'Reply' });
    await reply.fill('It ships today!');
    await reply.press('Enter');
    await expect(reply).toHaveValue('');
    const mine = bubble(page, 'It ships today!');
    await expect(mine).toHaveAttribute('data-direction', 'outbound');
    await expect(mine).toHaveAttribute('data-status', /^(delivered|read)$/);
    await expect(mine.getByTestId('status-tick')).toHaveAttribute('data-status', /^(delivered|read)$/);
    await expect(mine).toHaveAttribute('data-status', 'read', { timeout: 15_000 });
    await expect(mine.getByTestId('status-tick')).toHaveAttribute('data-status', 'read');
    await expect(mine.getByRole('img', { name: 'Read' })).toBeVisible();
    // The list preview follows.
    await expect(row.getByTestId('conversation-preview')).toHaveText('It ships today!');
    await expect(row.getByTestId('status-tick')).toHaveAttribute('data-status', 'read');
  });

  await test.step('react to the customer and reply to a message with a quote', async () => {
    const theirs = bubble(page, 'Order number is 4711');
    await theirs.hover();
    await theirs.getByRole('button', { name: 'React' }).click();
    await page.getByRole('button', { name: 'React 👍' }).click();
    await expect(theirs.getByTestId('reaction')).toHaveAttribute('data-by', 'agent');
    await theirs.hover();
    await theirs.getByRole('button', { name: 'Reply' }).click();
    await expect(page.getByTestId('reply-bar')).toContainText('Order number is 4711');
    await page.getByRole('textbox', { name: 'Reply' }).fill('Found it, thanks');
    await page.getByRole('textbox', { name: 'Reply' }).press('Enter');
    await expect(bubble(page, 'Found it, thanks').getByTestId('reply-quote')).toContainText('Order number is 4711');
    await expect(page.getByTestId('reply-bar')).toHaveCount(0);
  });

  await test.step('a private note shows yellow and is never sent', async () => {
    await page.getByText('Private note', { exact: true }).click();
    const note = page.getByRole('textbox', { name: 'Private note' });
    await note.fill('VIP customer, be quick');
    await note.press('Enter');
    const n = bubble(page, 'VIP customer, be quick');
    await expect(n).toHaveAttribute('data-note', 'true');
    await expect(n).toContainText('Private note');
    await expect(n.getByTestId('status-tick')).toHaveCount(0);
  });

  await test.step('resolve: it leaves the Open list, and is under Resolved', async () => {
    await page.getByRole('button', { name: 'Resolve' }).click();
    await expect(page.getByTestId('conversation-status')).toHaveText('Resolved');
    await expect(page.getByRole('button', { name: 'Reopen' })).toBeVisible();
    await expect(row).toHaveCount(0);
    await list(page).getByRole('textbox', { name: 'Status' }).click();
    await page.getByRole('option', { name: 'Resolved', exact: true }).click();
    await expect(row).toBeVisible();
    await expect(page).toHaveURL(/status=resolved/);
  });
});

test('canned responses: create in settings, then /shortcut in the composer fills the variables', async ({
  page,
  request,
}) => {
  const owner = await registerViaApi(request, 'owner');
  const sandbox = await sandboxViaApi(request, owner);
  const { conversation_id } = await simulateViaApi(request, owner, sandbox.id, 'Can I get a refund?');
  await useSession(page, owner);

  await page.goto('/settings/canned-responses');
  await expect(page.getByText('No canned responses yet')).toBeVisible();
  await page.getByRole('button', { name: 'New canned response' }).first().click();
  const dialog = page.getByRole('dialog', { name: 'New canned response' });
  await dialog.getByLabel('Shortcut').fill('Refund Now');
  await dialog.getByLabel('Title').fill('Refund on its way');
  await dialog.getByLabel('Text').fill('Hi {{contact.first_name}}, your refund is on its way. {{agent.first_name}}');
  await dialog.getByRole('button', { name: 'Create' }).click();
  await expect(dialog.getByText('Use lower-case letters, digits, - and _ only')).toBeVisible();
  await dialog.getByLabel('Shortcut').fill('refund');
  await dialog.getByRole('button', { name: 'Create' }).click();
  await expectToast(page, '/refund created');
  await expect(page.getByTestId('canned-refund')).toContainText('Refund on its way');

  // Edit it, then use it.
  await page.getByRole('button', { name: 'Edit /refund' }).click();
  const edit = page.getByRole('dialog', { name: 'Edit /refund' });
  await edit.getByLabel('Title').fill('Refund sent');
  await edit.getByRole('button', { name: 'Save' }).click();
  await expect(page.getByTestId('canned-refund')).toContainText('Refund sent');

  await page.goto(`/inbox/${conversation_id}`);
  await expect(bubble(page, 'Can I get a refund?')).toBeVisible();
  const reply = page.getByRole('textbox', { name: 'Reply' });
  await reply.fill('/ref');
  const options = page.getByRole('listbox', { name: 'Canned responses' });
  await expect(options.getByRole('option')).toHaveCount(1);
  await expect(options).toContainText('/refund');
  await reply.press('Enter');
  const first = owner.user.name.split(' ')[0]!;
  await expect(reply).toHaveValue(`Hi Ada, your refund is on its way. ${first}`);
  await reply.press('Enter');
  await expect(bubble(page, 'your refund is on its way')).toHaveAttribute('data-direction', 'outbound');

  // Delete it.
  await page.goto('/settings/canned-responses');
  await page.getByRole('button', { name: 'Delete /refund' }).click();
  await page.getByRole('dialog').getByRole('button', { name: 'Delete' }).click();
  await expect(page.getByText('No canned responses yet')).toBeVisible();
});

test('templates: pick the channel’s template, fill the contact’s values, send it', async ({ page, request }) => {
  const owner = await registerViaApi(request, 'owner');
  const sandbox = await sandboxViaApi(request, owner);
  const { conversation_id } = await simulateViaApi(request, owner, sandbox.id, 'Is my order ready?');
  await useSession(page, owner);

  const dialog = page.getByRole('dialog', { name: 'Send a template' });
  await test.step('no template yet: the dialog explains and links to the builder', async () => {
    await page.goto(`/inbox/${conversation_id}`);
    await expect(bubble(page, 'Is my order ready?')).toBeVisible();
    await page.getByRole('button', { name: 'Templates' }).click();
    await expect(dialog.getByTestId('templates-empty')).toContainText('Sandbox has no approved templates yet');
    await expect(dialog.getByRole('link', { name: 'Create a template' })).toHaveAttribute('href', '/templates/new');
    await dialog.getByRole('button', { name: 'Close' }).click();
    await expect(dialog).toBeHidden();
  });

  const res = await request.post('/api/v1/templates', {
    headers: bearer(owner.access_token),
    data: {
      channel_id: sandbox.id,
      name: 'order_ready',
      language: 'en',
      category: 'UTILITY',
      components: { body: { text: 'Hi {{1}}, your order {{2}} is ready for pickup.' } },
      mapping: { 'body.1': { source: 'contact.name' } },
    },
  });
  expect(res.status(), await res.text()).toBe(201);

  await test.step('pick it: the contact’s name is filled in, the order number is asked for', async () => {
    await page.reload();
    await page.getByRole('button', { name: 'Templates' }).click();
    const select = dialog.getByRole('textbox', { name: 'Template' });
    await select.click();
    await select.fill('order en');
    await page.getByRole('option', { name: /order_ready/ }).click();
    await expect(dialog.getByTestId('template-category')).toHaveText('Utility');
    await expect(dialog.getByRole('textbox', { name: 'Body {{1}}' })).toHaveValue('Ada Lovelace');
    const order = dialog.getByRole('textbox', { name: 'Body {{2}}' });
    await expect(order).toHaveValue('');
    await expect(order).toHaveAttribute('data-missing', 'true');
    const preview = dialog.getByTestId('template-send-preview').getByTestId('preview-body');
    await expect(preview).toHaveText('Hi Ada Lovelace, your order {{2}} is ready for pickup.');
    await dialog.getByRole('button', { name: 'Send template' }).click();
    await expect(dialog.getByText('Enter a value')).toBeVisible();
    await order.fill('A-1042');
    await expect(preview).toHaveText('Hi Ada Lovelace, your order A-1042 is ready for pickup.');
  });

  await test.step('send: it arrives in the thread as the rendered text', async () => {
    await dialog.getByRole('button', { name: 'Send template' }).click();
    await expect(dialog).toBeHidden();
    const sent = bubble(page, 'Hi Ada Lovelace, your order A-1042 is ready for pickup.');
    await expect(sent).toHaveAttribute('data-direction', 'outbound');
    await expect(sent).toHaveAttribute('data-status', /^(sent|delivered|read)$/);
  });
});

import { screen, waitFor, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { describe, expect, it } from 'vitest';

import type { MeOut } from '../../api/types';
import { channelOut, template } from '../../lib/campaigns/fixtures';
import type { TemplateIn, TemplateOut } from '../../lib/templates/types';
import { json, mockFetch, renderRoutes, selectOption } from '../../test/render';
import { TemplateBuilderPage } from './TemplateBuilderPage';

const me: MeOut = {
  user: { id: 'u1', email: 'me@example.com', name: 'Grace', avatar_url: null, status_text: null, created_at: '' },
  organization: { id: 'o', name: 'Org', created_at: '' },
  role: 'admin',
};
const routes = [
  { path: '/templates/new', element: <TemplateBuilderPage /> },
  { path: '/templates/:id', element: <TemplateBuilderPage /> },
  { path: '/templates', element: <p>list</p> },
];
const notFound = () => json(404, { title: 'Not found', status: 404, code: 'not_found' });
const preview = () => screen.getByTestId('template-preview');

function created(body: TemplateIn): TemplateOut {
  return template('t-new', {
    status: 'draft',
    name: body.name,
    language: body.language,
    category: body.category,
    components: body.components,
    variables: ['body.1'],
    mapping: body.mapping ?? {},
  });
}

describe('TemplateBuilderPage', () => {
  it('builds a template with a variable, live preview and checks, and saves it as a draft', async () => {
    let saves = 0;
    const { calls } = mockFetch(async (req, key) => {
      if (key === 'GET /api/v1/channels') return json(200, [channelOut('ch-wa')]);
      if (key === 'GET /api/v1/contact-attributes')
        return json(200, { items: [{ key: 'plan', label: 'Plan', type: 'text' }] });
      if (key === 'POST /api/v1/templates/validate') {
        const b = (await req.json()) as TemplateIn;
        const errors = b.components.footer?.includes('{{')
          ? [{ field: 'components.footer', message: 'must not contain variables' }]
          : [];
        return json(200, {
          ok: errors.length === 0,
          errors,
          variables: b.components.body.text.includes('{{1}}') ? ['body.1'] : [],
        });
      }
      if (key === 'POST /api/v1/templates') {
        saves++;
        if (saves === 1)
          return json(422, {
            title: 'Some fields are not valid',
            status: 422,
            code: 'validation_failed',
            errors: [{ field: 'components.buttons[0].text', message: 'must be at most 25 characters' }],
          });
        return json(201, created((await req.json()) as TemplateIn));
      }
      if (key === 'GET /api/v1/templates/t-new') return json(200, template('t-new', { status: 'draft' }));
      return notFound();
    });
    const { router } = renderRoutes(routes, '/templates/new?channel=ch-wa', { me });

    expect(await screen.findByRole('heading', { name: 'New template', level: 2 })).toBeInTheDocument();
    await waitFor(() => expect(screen.getByRole('textbox', { name: 'Channel' })).toHaveValue('Support WhatsApp'));
    await userEvent.type(screen.getByRole('textbox', { name: 'Name' }), 'Order Update');
    expect(screen.getByRole('textbox', { name: 'Name' })).toHaveValue('order_update');

    const body = screen.getByRole('textbox', { name: 'Body' });
    await userEvent.type(body, 'Hi , see you');
    // The caret after "Hi ": "Add variable" inserts {{1}} there.
    (body as HTMLTextAreaElement).setSelectionRange(3, 3);
    await userEvent.click(screen.getByRole('button', { name: 'Add variable' }));
    expect(body).toHaveValue('Hi {{1}}, see you');
    expect(within(preview()).getByTestId('preview-body')).toHaveTextContent('Hi {{1}}, see you');

    await userEvent.type(screen.getByRole('textbox', { name: 'Example for {{1}}' }), 'Ada');
    expect(within(preview()).getByTestId('preview-body')).toHaveTextContent('Hi Ada, see you');

    // The server's live check puts its message under the field.
    const footer = screen.getByRole('textbox', { name: 'Footer' });
    await userEvent.click(footer);
    await userEvent.paste('Code {{1}}');
    expect(await screen.findByText('must not contain variables', {}, { timeout: 3000 })).toBeInTheDocument();
    await userEvent.clear(footer);
    await userEvent.type(footer, 'Thanks for shopping');
    await waitFor(() => expect(screen.queryByText('must not contain variables')).toBeNull(), { timeout: 3000 });
    expect(within(preview()).getByTestId('preview-footer')).toHaveTextContent('Thanks for shopping');

    await userEvent.click(screen.getByRole('button', { name: 'Add button' }));
    await userEvent.click(await screen.findByRole('menuitem', { name: 'Quick reply' }));
    await userEvent.type(screen.getByRole('textbox', { name: 'Button 1 text' }), 'Stop promotions');
    expect(within(preview()).getByTestId('preview-button')).toHaveTextContent('Stop promotions');

    // The variable's default: the contact's first name, "there" when missing.
    await selectOption('Source for Body {{1}}', 'First name');
    await userEvent.type(screen.getByRole('textbox', { name: 'Fallback for Body {{1}}' }), 'there');

    // A refusal lands under the input it is about.
    await userEvent.click(screen.getByRole('button', { name: 'Save draft' }));
    expect(await screen.findByText('must be at most 25 characters')).toBeInTheDocument();

    await userEvent.click(screen.getByRole('button', { name: 'Save draft' }));
    await waitFor(() => expect(router.state.location.pathname).toBe('/templates/t-new'));
    const sent = JSON.parse(calls.filter((c) => c.key === 'POST /api/v1/templates').pop()!.body) as TemplateIn;
    expect(sent).toEqual({
      channel_id: 'ch-wa',
      name: 'order_update',
      language: 'en_US',
      category: 'MARKETING',
      components: {
        header: null,
        body: { text: 'Hi {{1}}, see you', examples: ['Ada'] },
        footer: 'Thanks for shopping',
        buttons: [{ type: 'quick_reply', text: 'Stop promotions' }],
      },
      mapping: { 'body.1': { source: 'contact.first_name', fallback: 'there' } },
    });
  });

  it("shows Meta's reason for a rejection and resubmits", async () => {
    const rejected = template('t1', { status: 'rejected', rejected_reason: 'Too promotional for UTILITY' });
    const { calls } = mockFetch((_req, key) => {
      if (key === 'GET /api/v1/channels') return json(200, [channelOut('ch-wa')]);
      if (key === 'GET /api/v1/contact-attributes') return json(200, { items: [] });
      if (key === 'GET /api/v1/contacts') return json(200, { items: [], next_cursor: null });
      if (key === 'GET /api/v1/templates/t1') return json(200, rejected);
      if (key === 'POST /api/v1/templates/validate')
        return json(200, { ok: true, errors: [], variables: rejected.variables });
      if (key === 'POST /api/v1/templates/t1/submit')
        return json(200, {
          ...rejected,
          status: 'pending',
          rejected_reason: null,
          submitted_at: '2026-01-02T00:00:00Z',
        });
      return notFound();
    });
    renderRoutes(routes, '/templates/t1', { me });
    expect(await screen.findByTestId('rejected-reason')).toHaveTextContent('Too promotional for UTILITY');
    expect(screen.getAllByTestId('template-status')[0]).toHaveAttribute('data-status', 'rejected');
    // The preview shows the saved template with its examples.
    expect(within(preview()).getByTestId('preview-header')).toHaveTextContent('Hello Ada');
    expect(within(preview()).getByTestId('preview-body')).toHaveTextContent('Hi Ada, 20% off until Sunday!');

    await userEvent.click(screen.getByRole('button', { name: 'Submit for review' }));
    expect(await screen.findByTestId('in-review')).toBeInTheDocument();
    expect(screen.getAllByTestId('template-status')[0]).toHaveAttribute('data-status', 'pending');
    expect(calls.some((c) => c.key === 'PATCH /api/v1/templates/t1')).toBe(false);
    // In review, the content is locked and only the mapping can be saved.
    expect(screen.getByRole('textbox', { name: 'Body' })).toBeDisabled();
    expect(screen.getByRole('button', { name: 'Save mapping' })).toBeEnabled();
    expect(screen.queryByRole('button', { name: 'Submit for review' })).toBeNull();
  });

  it('previews the template for a contact and names the variables they lack', async () => {
    const t = template('t1');
    const { calls } = mockFetch((_req, key) => {
      if (key === 'GET /api/v1/channels') return json(200, [channelOut('ch-wa')]);
      if (key === 'GET /api/v1/contact-attributes') return json(200, { items: [] });
      if (key === 'GET /api/v1/templates/t1') return json(200, t);
      if (key === 'GET /api/v1/contacts')
        return json(200, { items: [{ id: 'ct1', name: 'Ada Lovelace' }], next_cursor: null });
      if (key === 'POST /api/v1/templates/t1/preview')
        return json(200, {
          header: { format: 'text', text: 'Hello Ada' },
          body: 'Hi Ada, {{2}}% off until Sunday!',
          footer: 'Reply STOP to opt out',
          buttons: [{ type: 'quick_reply', text: 'Stop promotions' }],
          missing: ['body.2'],
        });
      return notFound();
    });
    renderRoutes(routes, '/templates/t1', { me });
    await screen.findByRole('textbox', { name: 'Preview for contact' });
    await selectOption('Preview for contact', 'Ada Lovelace');
    expect(await screen.findByTestId('preview-missing')).toHaveTextContent('Body {{2}}');
    const phone = screen.getByTestId('contact-preview-phone');
    expect(within(phone).getByTestId('preview-body')).toHaveTextContent('Hi Ada, {{2}}% off until Sunday!');
    const req = calls.find((c) => c.key === 'POST /api/v1/templates/t1/preview')!;
    expect(JSON.parse(req.body)).toEqual({
      contact_id: 'ct1',
      mapping: {
        'header.1': { source: 'fixed', value: '' },
        'body.1': { source: 'contact.first_name', fallback: 'there' },
        'body.2': { source: 'fixed', value: '' },
      },
    });
  });
});

import { Navigate, createBrowserRouter, type RouteObject } from 'react-router';

import { RequireAuth } from './auth/RequireAuth';
import { hasSession } from './auth/session';
import { AppLayout } from './components/AppLayout';
import { AcceptInvitePage } from './pages/AcceptInvitePage';
import { CampaignPage } from './pages/campaigns/CampaignPage';
import { CampaignsPage } from './pages/campaigns/CampaignsPage';
import { CampaignWizardPage } from './pages/campaigns/CampaignWizardPage';
import { ChatPage } from './pages/chat/ChatPage';
import { InboxPage } from './pages/inbox/InboxPage';
import { ContactsPage } from './pages/contacts/ContactsPage';
import { ImportPage } from './pages/contacts/ImportPage';
import { SegmentsPage } from './pages/contacts/SegmentsPage';
import { ForgotPasswordPage } from './pages/ForgotPasswordPage';
import { LoginPage } from './pages/LoginPage';
import { NotFoundPage } from './pages/NotFoundPage';
import { PLACEHOLDERS, PlaceholderPage } from './pages/PlaceholderPage';
import { RegisterPage } from './pages/RegisterPage';
import { ResetPasswordPage } from './pages/ResetPasswordPage';
import { ApiKeysPage } from './pages/settings/ApiKeysPage';
import { CannedResponsesPage } from './pages/settings/CannedResponsesPage';
import { ChannelPage } from './pages/settings/ChannelPage';
import { ChannelsPage } from './pages/settings/ChannelsPage';
import { ContactFieldsPage } from './pages/settings/ContactFieldsPage';
import { GroupsPage } from './pages/settings/GroupsPage';
import { MembersPage } from './pages/settings/MembersPage';
import { OrganizationPage } from './pages/settings/OrganizationPage';
import { ProfilePage } from './pages/settings/ProfilePage';
import { SessionsPage } from './pages/settings/SessionsPage';
import { SettingsLayout } from './pages/settings/SettingsLayout';
import { TagsPage } from './pages/settings/TagsPage';
import { TeamPage } from './pages/settings/TeamPage';
import { TeamsPage } from './pages/settings/TeamsPage';
import { TemplateBuilderPage } from './pages/templates/TemplateBuilderPage';
import { TemplatesPage } from './pages/templates/TemplatesPage';

function Home() {
  return <Navigate to={hasSession() ? '/inbox' : '/login'} replace />;
}

export const routes: RouteObject[] = [
  { path: '/', element: <Home /> },
  { path: '/login', element: <LoginPage /> },
  { path: '/register', element: <RegisterPage /> },
  { path: '/forgot-password', element: <ForgotPasswordPage /> },
  { path: '/reset-password', element: <ResetPasswordPage /> },
  { path: '/invite/:token', element: <AcceptInvitePage /> },
  {
    element: (
      <RequireAuth>
        <AppLayout />
      </RequireAuth>
    ),
    children: [
      ...PLACEHOLDERS.map((p) => ({ path: p.path, element: <PlaceholderPage title={p.title} purpose={p.purpose} /> })),
      { path: 'inbox/:conversationId?', element: <InboxPage /> },
      { path: 'chat/:channelId?', element: <ChatPage /> },
      { path: 'team-chat', element: <Navigate to="/chat" replace /> },
      { path: 'templates', element: <TemplatesPage /> },
      { path: 'templates/new', element: <TemplateBuilderPage /> },
      { path: 'templates/:id', element: <TemplateBuilderPage /> },
      { path: 'campaigns', element: <CampaignsPage /> },
      { path: 'campaigns/new', element: <CampaignWizardPage /> },
      { path: 'campaigns/:id/edit', element: <CampaignWizardPage /> },
      { path: 'campaigns/:id', element: <CampaignPage /> },
      { path: 'contacts/segments', element: <SegmentsPage /> },
      { path: 'contacts/import', element: <ImportPage /> },
      { path: 'contacts/:id?', element: <ContactsPage /> },
      {
        path: 'settings',
        element: <SettingsLayout />,
        children: [
          { index: true, element: <Navigate to="profile" replace /> },
          { path: 'profile', element: <ProfilePage /> },
          { path: 'organization', element: <OrganizationPage /> },
          { path: 'members', element: <MembersPage /> },
          { path: 'teams', element: <TeamsPage /> },
          { path: 'teams/:teamId', element: <TeamPage /> },
          { path: 'channels', element: <ChannelsPage /> },
          { path: 'channels/:id', element: <ChannelPage /> },
          { path: 'canned-responses', element: <CannedResponsesPage /> },
          { path: 'contact-fields', element: <ContactFieldsPage /> },
          { path: 'tags', element: <TagsPage /> },
          { path: 'groups', element: <GroupsPage /> },
          { path: 'api-keys', element: <ApiKeysPage /> },
          { path: 'sessions', element: <SessionsPage /> },
        ],
      },
      { path: '*', element: <NotFoundPage /> },
    ],
  },
];

export function createRouter() {
  return createBrowserRouter(routes);
}

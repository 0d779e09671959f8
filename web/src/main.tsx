import '@mantine/core/styles.css';
import '@mantine/notifications/styles.css';

import { MantineProvider } from '@mantine/core';
import { ModalsProvider } from '@mantine/modals';
import { Notifications } from '@mantine/notifications';
import { QueryClientProvider } from '@tanstack/react-query';
import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';
import { RouterProvider } from 'react-router';

import { setAuthFailureHandler } from './api/client';
import { createQueryClient } from './queryClient';
import { createRouter } from './router';
import { theme } from './theme';

const queryClient = createQueryClient();
const router = createRouter();

// The refresh token was refused: drop cached data and go to the login page, remembering where we were.
setAuthFailureHandler(() => {
  queryClient.clear();
  const here = router.state.location;
  if (!['/login', '/register'].includes(here.pathname)) {
    void router.navigate('/login', { replace: true, state: { from: here.pathname + here.search } });
  }
});

const root = document.getElementById('root');
if (!root) throw new Error('missing #root');

createRoot(root).render(
  <StrictMode>
    <MantineProvider theme={theme} defaultColorScheme="auto">
      <QueryClientProvider client={queryClient}>
        <ModalsProvider>
          <Notifications position="top-right" />
          <RouterProvider router={router} />
        </ModalsProvider>
      </QueryClientProvider>
    </MantineProvider>
  </StrictMode>,
);

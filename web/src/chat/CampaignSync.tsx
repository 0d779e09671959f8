/**
 * Keeps templates and campaigns live for the whole signed-in app (the client is in its
 * `org:{org}` room automatically): review results from Meta, campaign state changes and progress
 * go straight into the caches; after a reconnect both are reloaded over REST.
 */
import { useQueryClient } from '@tanstack/react-query';
import { useEffect } from 'react';

import { campaignKeys } from '../lib/campaigns/api';
import { templateKeys } from '../lib/templates/api';
import { CAMPAIGN_EVENTS, applyCampaignEvent } from './campaignEvents';
import { useSocket, useSocketEvent } from './SocketProvider';

export function CampaignSync() {
  const qc = useQueryClient();
  const { onReconnect } = useSocket();

  useEffect(
    () =>
      onReconnect(() => {
        void qc.invalidateQueries({ queryKey: templateKeys.all });
        void qc.invalidateQueries({ queryKey: campaignKeys.all });
      }),
    [onReconnect, qc],
  );

  useSocketEvent([...CAMPAIGN_EVENTS], (data, name) => {
    const fx = applyCampaignEvent(qc, name, data);
    if (fx.refetchTemplateLists) void qc.invalidateQueries({ queryKey: templateKeys.lists });
    if (fx.refetchCampaignLists) void qc.invalidateQueries({ queryKey: campaignKeys.lists });
    if (fx.refetchCampaign) {
      void qc.invalidateQueries({ queryKey: campaignKeys.stats(fx.refetchCampaign) });
      void qc.invalidateQueries({ queryKey: campaignKeys.recipientsOf(fx.refetchCampaign) });
    }
  });

  return null;
}

/**
 * Names for the team chat shapes, derived from the generated `paths` like `types.ts` does, so
 * they follow the backend's OpenAPI document.
 */
import type { paths } from './schema';
import type { Body } from './types';

type Json<T> = T extends { content: { 'application/json': infer B } } ? B : never;
type Ok<Op> = Op extends { responses: infer R }
  ? R extends { 200: infer S }
    ? Json<S>
    : R extends { 201: infer S }
      ? Json<S>
      : never
  : never;

export type ChannelOut = Ok<paths['/api/v1/chat/channels/{id}']['get']>;
export type ChannelKind = ChannelOut['kind'];
export type Disappearing = ChannelOut['disappearing'];
export type MessagePage = Ok<paths['/api/v1/chat/channels/{id}/messages']['get']>;
export type MessageOut = MessagePage['items'][number];
export type ReactionOut = MessageOut['reactions'][number];
export type AttachmentOut = Ok<paths['/api/v1/chat/attachments']['post']>;
export type ThreadOut = Ok<paths['/api/v1/chat/messages/{id}/thread']['get']>;
export type ChannelMemberOut = Ok<paths['/api/v1/chat/channels/{id}/members']['get']>['items'][number];
export type UnlockOut = Ok<paths['/api/v1/chat/channels/{id}/unlock']['post']>;
export type ChannelIn = Body<paths['/api/v1/chat/channels']['post']>;
export type ChannelPatch = Body<paths['/api/v1/chat/channels/{id}']['patch']>;
export type MessageIn = Body<paths['/api/v1/chat/channels/{id}/messages']['post']>;

-- A contact's photo: the blob store key (`contact-avatars/{org}/{contact}/{random}.{ext}`), served
-- publicly by that unguessable key like member avatars. NULL: no photo.
ALTER TABLE contacts ADD COLUMN avatar_key TEXT;

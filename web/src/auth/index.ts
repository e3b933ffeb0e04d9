export { useAuth, signIn, signOut, completeSignIn, ensureSession, accessToken, setMeForTests } from './useAuth';
export { SignInError } from './oidc';

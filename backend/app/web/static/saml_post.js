// SAML HTTP-POST binding (SAML Bindings 3.5.3): send the form on to the identity provider at once.
// A file of our own origin, since the Content-Security-Policy allows no inline script.
document.getElementById("saml-post").submit();
